#!/usr/bin/env node
'use strict';
// The gateway of a clone or an image: the compiled dist/cli/gateway.js (npm run build makes it; npm start builds and runs it).
const { existsSync } = require('node:fs');
const path = require('node:path');

const entry = path.join(__dirname, '..', 'dist', 'cli', 'gateway.js');
if (!existsSync(entry)) {
  process.stderr.write(`ce-audit-gateway: ${entry} is missing: run "npm run build" in ${path.dirname(__dirname)} first\n`);
  process.exit(1);
}
require(entry);
