// Runs every GraphQL-over-HTTP server audit of `graphql-http` against the URL given as the
// first argument and exits non-zero unless all of them pass (warnings count as failures).
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs http://127.0.0.1:4000/graphql');
  process.exit(2);
}
const results = await auditServer({ url });
let passed = 0;
for (const result of results) {
  if (result.status === 'ok') {
    passed++;
    continue;
  }
  let body = '';
  try {
    body = result.response ? await result.response.text() : '';
  } catch {}
  console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}: ${result.reason}`);
  console.log(`  -> HTTP ${result.response?.status} ${body.slice(0, 300)}`);
}
console.log(`graphql-http server audit: ${passed}/${results.length} passed`);
process.exit(passed === results.length ? 0 : 1);
