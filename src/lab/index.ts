// The built-in lab: real Debian 12 hosts (systemd-nspawn on overlayfs, one network
// namespace each) on this machine, plus an apt proxy and an ACME CA (Pebble).
export { labMain } from './cli.ts';
export {
  labUp, labDown, labStatus, labPaths, labHosts,
  snapshotHost, restoreHost, stopHost, startHost, linkDown, linkUp,
  inClient, hostExec, leftovers,
  type UpOptions, type UpResult, type DownResult, type LabPaths, type LabStatus, type HostStatus,
} from './lab.ts';
export { LabError } from './errors.ts';
export type { RunResult } from './exec.ts';
