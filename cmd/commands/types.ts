// A subcommand of the `timestore` CLI. Add one by writing cmd/commands/<name>.ts and listing it in
// cmd/commands/index.ts.
export interface Subcommand {
  name: string;
  /** One line for `timestore --help`. */
  summary: string;
  /** Runs with the arguments after the subcommand name; resolves with the exit code. */
  run(argv: string[]): Promise<number>;
}
