// Cross-checks the gateway's streaming transports with the reference clients: `graphql-ws`
// (graphql-transport-ws over WebSocket) and `graphql-sse` (distinct connections mode),
// against a running portal seeded with the demo data (`portal serve --demo`).
//
// Signs in as Carol (a customer) and Alice (a tenant admin) with the demo password,
// subscribes as Carol to one of her accounts over each client, renames the account as
// Alice, and expects each client to receive the renamed account with its owner (a field
// of another subgraph). Exits non-zero on any failure.
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';

const url = process.argv[2];
if (!url) {
  console.error('usage: node clients.mjs http://127.0.0.1:4000/graphql');
  process.exit(2);
}
const PASSWORD = 'portal demo passphrase';
const SUBSCRIPTION =
  'subscription($id: ID!) { accountUpdated(id: $id) { id name owner { displayName } } }';

async function graphql(query, variables, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function signIn(email) {
  const data = await graphql(
    'mutation($e: String!, $p: String!) { signIn(input: { tenant: "acme", email: $e, password: $p }) { auth { accessToken } } }',
    { e: email, p: PASSWORD },
  );
  return data.signIn.auth.accessToken;
}

function withTimeout(promise, what, ms = 10000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// Subscribes with `subscribe(sink)`, renames the account to `name` as Alice, and resolves
/// with the first event.
async function oneEvent(label, subscribe, accountId, name, aliceToken) {
  let dispose;
  const received = new Promise((resolve, reject) => {
    dispose = subscribe({
      next: (value) => resolve(value),
      error: (error) => reject(new Error(`${label}: ${JSON.stringify(error?.message ?? error)}`)),
      complete: () => reject(new Error(`${label}: completed before any event`)),
    });
  });
  // Let the subscription open before the change commits.
  await sleep(1000);
  await graphql(
    'mutation($id: ID!, $name: String!) { updateAccount(id: $id, input: { name: $name }) { id } }',
    { id: accountId, name },
    aliceToken,
  );
  try {
    return await withTimeout(received, label);
  } finally {
    dispose();
  }
}

function check(label, event, name) {
  const account = event?.data?.accountUpdated;
  if (event?.errors || account?.name !== name || account?.owner?.displayName !== 'Carol Customer') {
    throw new Error(`${label}: unexpected event ${JSON.stringify(event)}`);
  }
  console.log(`${label}: ok (${JSON.stringify(account)})`);
}

const carol = await signIn('carol@acme.example');
const alice = await signIn('alice@acme.example');
const me = await graphql('{ me { accounts { edges { node { id number } } } } }', {}, carol);
const account = me.me.accounts.edges.map((e) => e.node).find((a) => a.number === 'ACME-0002');
if (!account) throw new Error(`Carol has no ACME-0002: ${JSON.stringify(me)}`);

const ws = createWsClient({
  url: url.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${carol}` },
  retryAttempts: 0,
});
const wsEvent = await oneEvent(
  'graphql-ws',
  (sink) => ws.subscribe({ query: SUBSCRIPTION, variables: { id: account.id } }, sink),
  account.id,
  'Renamed over graphql-ws',
  alice,
);
check('graphql-ws subscription', wsEvent, 'Renamed over graphql-ws');
// A query over the same socket: one result, then complete.
const viaWs = await withTimeout(
  new Promise((resolve, reject) => {
    let result;
    ws.subscribe(
      { query: '{ me { displayName } }' },
      { next: (value) => (result = value), error: reject, complete: () => resolve(result) },
    );
  }),
  'graphql-ws query',
);
if (viaWs?.data?.me?.displayName !== 'Carol Customer') {
  throw new Error(`graphql-ws query: ${JSON.stringify(viaWs)}`);
}
console.log('graphql-ws query: ok');
await ws.dispose();

const sse = createSseClient({
  url,
  headers: { authorization: `Bearer ${carol}` },
  retryAttempts: 0,
});
const sseEvent = await oneEvent(
  'graphql-sse',
  (sink) => sse.subscribe({ query: SUBSCRIPTION, variables: { id: account.id } }, sink),
  account.id,
  'Renamed over graphql-sse',
  alice,
);
check('graphql-sse subscription', sseEvent, 'Renamed over graphql-sse');
sse.dispose();
console.log('reference streaming clients: all passed');
process.exit(0);
