import { InputError } from '../util/errors.js';

/**
 * Something about the internal CA that must stop the run before any host is contacted: a key file
 * others can read, a CA folder in a state we did not write, openssl missing, a lock held too long.
 * It is bad input (exit 4), like a secrets file with a loose mode: nothing on a host was touched.
 */
export class PkiError extends InputError {}
