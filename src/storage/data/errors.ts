// Errors the engine raises for bad input. Both mean "the caller sent something wrong", never
// "the store is broken", so the API maps them to 4xx; neither leaves any change behind.

/** A command (or one of its ops) is malformed. Thrown before anything is written. */
export class InvalidCommandError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCommandError';
  }
}

/** A query parameter or cursor is malformed or out of range. */
export class InvalidQueryError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidQueryError';
  }
}
