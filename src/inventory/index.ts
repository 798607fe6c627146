export { detectFormat, loadInventory, parseInventory, resolveInventoryPath, secretEnvName } from './loader.js';
export type { Host, Inventory, InventoryFormat, LoadOptions, ResolvedConnection } from './loader.js';
export { configureInventoryLoading } from './context.js';
export { prepareHosts, type PrepareOptions } from './prepare.js';
export { selectHosts } from './limit.js';
export { VAULT_PASSWORD_ENV } from './vault/keyring.js';
