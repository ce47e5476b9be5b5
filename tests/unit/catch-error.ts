// Test helper: the error a call throws, so its fields can be matched; fails the test if none.
export function catchError(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}
