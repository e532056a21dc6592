// Runs the compiled example.ts against a running system: node <outDir>/run-example.mjs http://127.0.0.1:8000
// (check.sh --run compiles it, starts `minsheng run` on a free port and calls this).
import { reportWithPhoto } from "./example.js";

// A 1×1 PNG, as a phone's photo would be sent.
const png = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);
const status = await reportWithPhoto(process.argv[2], `example-${Date.now()}`, new Blob([png], { type: "image/png" }));
if (status !== "submitted") throw new Error(`unexpected status ${status}`);
