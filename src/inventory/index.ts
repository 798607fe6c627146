export { loadInventory, parseInventory, resolveInventoryPath, secretEnvName } from './loader.js';
export type { Host, Inventory, ResolvedConnection } from './loader.js';
export { selectHosts } from './limit.js';
