// The entry point of /ui/herald.js: defines Herald's custom elements. Import it once from any
// page (`<script type="module" src="/ui/herald.js"></script>`); the classes are exported too,
// for subclassing. Defining is skipped for a name already taken, so a page that loads the
// module twice (from two URLs) keeps working.

import { HeraldStream } from './herald-stream.js';
import { DeploymentStatusBoard } from './deployment-status-board.js';
import { HeraldInspector } from './herald-inspector.js';
import { HeraldNodeStats } from './herald-node-stats.js';
import { HeraldTokenField } from './herald-token-field.js';

export { HeraldStream, DeploymentStatusBoard, HeraldInspector, HeraldNodeStats, HeraldTokenField };
export { SseParser } from './lib/sse.js';

const ELEMENTS = {
  'herald-stream': HeraldStream,
  'deployment-status-board': DeploymentStatusBoard,
  'herald-inspector': HeraldInspector,
  'herald-node-stats': HeraldNodeStats,
  'herald-token-field': HeraldTokenField,
};

for (const [name, element] of Object.entries(ELEMENTS)) {
  if (!customElements.get(name)) customElements.define(name, element);
}
