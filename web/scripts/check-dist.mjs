// CI's reproducibility check: rebuild dist/ and demand that it equals what git has, so the
// bundle the binary embeds is always the one its sources and package-lock.json produce.

import { execFileSync } from 'node:child_process';

execFileSync('node', ['build.mjs'], { stdio: 'inherit' });
const changed = execFileSync('git', ['status', '--porcelain', '--', 'dist'], { encoding: 'utf8' });
if (changed.trim()) {
  console.error(`${changed}\nweb/dist differs from a fresh build: run \`npm run build\` in web/ and commit web/dist.`);
  execFileSync('git', ['diff', '--stat', '--', 'dist'], { stdio: 'inherit' });
  process.exit(1);
}
console.log('web/dist is what the sources build');
