// Ends an exhaustive switch: adding a member to a union fails to compile until it is handled.
export function unreachable(value: never): never {
  throw new Error(`unhandled case: ${JSON.stringify(value)}`);
}
