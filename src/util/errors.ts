/**
 * The error hierarchy. The CLI turns each into one line (plus an optional hint);
 * the kind decides the exit code and whether a host counts as failed or unreachable.
 */
export class ProvisionError extends Error {
  readonly hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = new.target.name;
    this.hint = hint;
  }
}

/** Bad input found before any connection: inventory, playbook, vars, CLI arguments. */
export class InputError extends ProvisionError {}

/** Inventory problems: file, line/column where known, field. */
export class InventoryError extends InputError {}

/** Playbook or role definition problems. */
export class PlaybookError extends InputError {}

/** A host could not be reached or the connection dropped: the host is unreachable, not failed. */
export class ConnectionError extends ProvisionError {
  constructor(
    message: string,
    readonly level: 'dns' | 'socket' | 'timeout' | 'auth' | 'hostkey' | 'protocol' | 'closed',
    hint?: string,
  ) {
    super(message, hint);
  }
}

/** A module failed on a host: the task failed. */
export class ModuleError extends ProvisionError {
  constructor(
    message: string,
    readonly detail?: { stdout?: string; stderr?: string; exitCode?: number; command?: string },
  ) {
    super(message);
  }
}

/** A file or config failed validation before replacing the live one. */
export class ValidationError extends ModuleError {}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A plan that may not be applied: too old, or the hosts drifted (exit 5). */
export class PlanRefused extends ProvisionError {}
