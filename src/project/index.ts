// A project folder: its own roles and modules (found by name, loaded at run time) and where its paths resolve from.
import { enableProjectDiscovery } from './discover.js';

export { applyProjectOption, PROJECT_FOLDERS, projectDir, projectPath, useProject } from './project.js';
export { enableProjectDiscovery, findProjectModule, findProjectRole } from './discover.js';
export { expandRoleDependencies, withDependencies } from './dependencies.js';
export { loadYamlRole, optionToZod } from './yaml-role.js';
export { loadTypeScript } from './load-ts.js';

enableProjectDiscovery();
