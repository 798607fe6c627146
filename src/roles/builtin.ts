// Importing this module registers every built-in role. A new role is a folder src/roles/<name>/
// with an index.ts exporting `role: RoleDef`, plus one line here (static imports keep the
// CLI bundle-able and its start fast).
import { role as app } from './app/index.js';
import { role as certificates } from './certificates/index.js';
import { role as common } from './common/index.js';
import { role as firewall } from './firewall/index.js';
import { role as haproxy } from './haproxy/index.js';
import { role as keepalived } from './keepalived/index.js';
import { role as monitoring } from './monitoring/index.js';
import { role as mysql } from './mysql/index.js';
import { role as nginx } from './nginx/index.js';
import { role as prometheus } from './prometheus/index.js';
import { registerRole } from './index.js';

for (const r of [common, firewall, mysql, nginx, app, haproxy, certificates, keepalived, monitoring, prometheus]) registerRole(r);
