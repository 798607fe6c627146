/** Var values that are not plain data: what the loaders put in, what the resolver turns into values. */

/** A value computed on first read, then kept: an inline !vault value, a secret from secrets_command. */
export class Deferred {
  #done = false;
  #value: unknown;
  constructor(private readonly compute: () => unknown) {}
  resolve(): unknown {
    if (!this.#done) {
      this.#value = this.compute();
      this.#done = true;
    }
    return this.#value;
  }
}

/** A string from a vault-encrypted vars file: a secret, which may still be a template. */
export class SecretText {
  constructor(readonly text: string) {}
}

/** Ansible's `!unsafe`: a string taken as written, never evaluated as a template. */
export class UnsafeText {
  constructor(readonly text: string) {}
}

/** One var as a source defines it, and where ("file:line:col"). */
export interface VarDef {
  value: unknown;
  at: string;
}

/** The vars one source gives a host. A function: a vault-encrypted file is decrypted only when read. */
export type VarLayer = () => ReadonlyMap<string, VarDef>;
