// Builds dist/: the files the herald binary embeds (crates/herald/src/http/ui.rs).
//   dist/herald.js   src/herald.js and Lit, bundled into one minified ES module
//   dist/index.html  the dashboard page, copied as is
// The output depends only on the sources and the locked packages, so CI can rebuild it and
// demand no difference from what is committed (`npm run check-dist`).

import { build } from 'esbuild';
import { copyFile, mkdir, readFile } from 'node:fs/promises';

const lit = JSON.parse(await readFile(new URL('node_modules/lit/package.json', import.meta.url)));

await mkdir('dist', { recursive: true });
await build({
  entryPoints: ['src/herald.js'],
  outfile: 'dist/herald.js',
  bundle: true,
  format: 'esm',
  minify: true,
  // Current Chromium, Firefox and Safari (SPEC §12); nothing is down-levelled beyond that.
  target: ['chrome111', 'firefox113', 'safari16.4'],
  // Lit's BSD-3-Clause notices travel with the code.
  legalComments: 'eof',
  banner: {
    js: `// Herald web components (web/src), bundled with Lit ${lit.version} by esbuild. Generated: edit web/src and run \`npm run build\`.`,
  },
  logLevel: 'warning',
});
await copyFile('src/index.html', 'dist/index.html');
