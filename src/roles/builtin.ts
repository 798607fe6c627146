// Importing this module registers every built-in role.
export {};
