#!/usr/bin/env node
// CRI client on Node @grpc/grpc-js at its defaults. See SOURCES.md.
//
//   node grpcjs_cri.js TARGET OPS_JSON      TARGET: unix:/path/to.sock
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const def = loader.loadSync(path.join(__dirname, 'v1.proto'), {
  keepCase: true, longs: String, enums: String, defaults: false, oneofs: true,
});
const runtimeV1 = grpc.loadPackageDefinition(def).runtime.v1;

// grpc-js status codes by number, as names (grpc.status is name -> number).
const codeName = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

function unary(client, method, request) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + 120000);
    client[method](request, { deadline }, (err, resp) => {
      if (err) resolve({ code: codeName[err.code] || String(err.code), details: err.details || '', response: null });
      else resolve({ code: 'OK', details: '', response: resp });
    });
  });
}

async function main() {
  const [target, opsJson] = process.argv.slice(2);
  const ops = JSON.parse(opsJson);
  const creds = grpc.credentials.createInsecure();
  const images = new runtimeV1.ImageService(target, creds);
  const runtime = new runtimeV1.RuntimeService(target, creds);
  for (const op of ops) {
    const spec = { image: op.image || '' };
    let r;
    switch (op.op) {
      case 'pull': r = await unary(images, 'PullImage', { image: spec }); break;
      case 'status': r = await unary(images, 'ImageStatus', { image: spec }); break;
      case 'list': r = await unary(images, 'ListImages', {}); break;
      case 'remove': r = await unary(images, 'RemoveImage', { image: spec }); break;
      case 'version': r = await unary(runtime, 'Version', { version: 'v1' }); break;
      default: throw new Error('unknown op ' + op.op);
    }
    process.stdout.write(JSON.stringify({ op: op.op, ...r }) + '\n');
  }
  images.close();
  runtime.close();
}

main().catch((e) => { console.error(e); process.exit(1); });
