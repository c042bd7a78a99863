// Preloaded with `node --import` when Pilot runs from inside node_modules (a
// global or dependency install): Node refuses to strip types there
// (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING), so this hook strips the types
// of this package's own .ts files itself. Other packages are left untouched.
import { readFileSync } from 'node:fs';
import { registerHooks, stripTypeScriptTypes } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const srcPrefix = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'src')).href + '/';

registerHooks({
  load(url, context, nextLoad) {
    if (url.startsWith(srcPrefix) && url.endsWith('.ts')) {
      const source = stripTypeScriptTypes(readFileSync(fileURLToPath(url), 'utf8'), { mode: 'strip' });
      return { format: 'module', source, shortCircuit: true };
    }
    return nextLoad(url, context);
  },
});
