// Validates the generated documents with the pinned npm checkers of web/:
//   node tests/contract/check.cjs openapi|asyncapi <file.json> <web dir>
// Prints what the checker says and exits 1 on any error.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const [, , kind, file, web] = process.argv;
const need = (name) => require(path.join(path.resolve(web), 'node_modules', name));
const text = fs.readFileSync(file, 'utf8');

async function main() {
  if (kind === 'openapi') {
    const SwaggerParser = need('@apidevtools/swagger-parser');
    // validate(): the OpenAPI 3.1 JSON Schema, then every $ref resolved
    const api = await SwaggerParser.validate(JSON.parse(text));
    console.log(`swagger-parser: valid OpenAPI ${api.openapi}, ${Object.keys(api.paths).length} paths`);
    return 0;
  }
  const { Parser } = need('@asyncapi/parser');
  const { document, diagnostics } = await new Parser().parse(text);
  const errors = diagnostics.filter((d) => d.severity === 0);
  for (const d of diagnostics)
    console.log(`${['error', 'warning', 'info', 'hint'][d.severity]} ${d.code}: ${d.message} at ${d.path.join('.')}`);
  console.log(`@asyncapi/parser: ${errors.length} errors, ${diagnostics.length - errors.length} other diagnostics, ` +
              `${document ? document.channels().length + ' channels, ' + document.operations().length + ' operations' : 'no document'}`);
  return errors.length || !document ? 1 : 0;
}
main().then((rc) => process.exit(rc), (e) => { console.log(`${kind}: INVALID: ${e.message}`); process.exit(1); });
