/** The InventoryError a call throws (the test fails if it throws nothing or something else). */
import { expect } from 'vitest';
import { InventoryError } from '../../../src/util/errors.js';

export function thrown(fn: () => unknown): InventoryError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryError);
    return err as InventoryError;
  }
  throw new Error('no error');
}
