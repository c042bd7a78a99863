// Entry point of the pilotctl command.
import { main } from './main.ts';
import { quietOnClosedPipe } from './output.ts';

quietOnClosedPipe();
process.exitCode = await main(process.argv.slice(2));
