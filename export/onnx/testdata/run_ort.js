// Runs an ONNX model with onnxruntime-node (CPU), for the export tests:
//
//   node run_ort.js MODEL.onnx IN.bin DIMS OUT.bin [IN.bin DIMS OUT.bin ...]
//
// Each IN.bin holds the little-endian float32 values of the model's only input, DIMS its
// shape ("3,1,28,28"); the values of the model's only output go to OUT.bin the same way.
// All runs share one session, so inputs of different batch sizes check the dynamic batch.
// Prints one JSON line: the session's input and output names and each run's output dims.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 4 || (args.length - 1) % 3 !== 0) {
    throw new Error('usage: node run_ort.js MODEL.onnx IN.bin DIMS OUT.bin [IN.bin DIMS OUT.bin ...]');
  }
  const session = await ort.InferenceSession.create(args[0], { graphOptimizationLevel: 'all' });
  if (session.inputNames.length !== 1 || session.outputNames.length !== 1) {
    throw new Error(`want one input and one output, got ${session.inputNames} and ${session.outputNames}`);
  }
  const dims = [];
  for (let i = 1; i < args.length; i += 3) {
    const raw = fs.readFileSync(args[i]);
    const x = new Float32Array(raw.byteLength / 4);
    for (let j = 0; j < x.length; j++) x[j] = raw.readFloatLE(4 * j);
    const shape = args[i + 1].split(',').map(Number);
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, shape) });
    const y = out[session.outputNames[0]];
    const buf = Buffer.alloc(4 * y.data.length);
    for (let j = 0; j < y.data.length; j++) buf.writeFloatLE(y.data[j], 4 * j);
    fs.writeFileSync(args[i + 2], buf);
    dims.push(y.dims);
  }
  console.log(JSON.stringify({ inputs: session.inputNames, outputs: session.outputNames, dims }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
