/** The one error type the lab throws on purpose; labMain prints its message as a single line. */
export class LabError extends Error {
  override name = 'LabError';
}
