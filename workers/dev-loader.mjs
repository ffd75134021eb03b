// Runs a thread entry from TypeScript sources (tests, `tsx`): tsx's loader hooks only
// apply to modules imported after they are registered, so a worker whose entry is a
// .ts file starts here and imports the real entry (passed as argv[2]). Built code
// (dist/) starts its .js entries directly and never loads this file.
import { register } from 'tsx/esm/api';

register();
await import(process.argv[2]);
