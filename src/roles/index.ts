// The roles' public surface: define a role, register it, check and parse its vars.
export type { BuiltinVars, HostRule, RoleContext, RoleDef, RoleTarget, RoleVarsSchema, VarIssue } from './types.js';
export { defineRole, problemIf, withRules, type VarRule } from './define.js';
export { getRole, isBuiltinRole, registerBuiltinRole, registerRole, roleNames, setRoleLookup, type RoleLookup } from './registry.js';
export { checkRoleVars, parseRoleVars, roleVars, RoleVarsError, type PlayVars } from './validate.js';
export { unreadVarWarnings } from './unread.js';
