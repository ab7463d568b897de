/**
 * The `fracture-service` command line: parses arguments and dispatches to one command module each.
 * @module
 */
import { Command } from 'commander';

/** Runs the CLI with `argv` (as `process.argv`) and resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('fracture-service')
    .description('Train, compare and serve bone X-ray fracture classifiers (cnn, vgg16, resnet50, inceptionv3).')
    .showHelpAfterError()
    .exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    const code = (error as { exitCode?: number }).exitCode;
    if (typeof code === 'number') return code;
    throw error;
  }
}
