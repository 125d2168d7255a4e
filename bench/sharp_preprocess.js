// The reference system's preprocess with sharp 0.33, one photo per process (issue 12), for
// `python -m bench.preprocess --vs-sharp`, which copies this file next to its node_modules.
//
// Usage: node preprocess.js IN.jpg OUT.jpg
// EXIF rotation, 2048 px wide (shrink-on-load, then lanczos3), JPEG q90 with sharp's mozjpeg
// preset (trellis quantisation, progressive, optimised scans), metadata stripped (sharp's
// default). The ThumbHash is computed from a second pipeline on the input, at most 100x100, run
// concurrently with the first: the fastest way sharp offers. Prints the base64 ThumbHash.
'use strict';

const fs = require('fs');
const sharp = require('sharp');
const { rgbaToThumbHash } = require('thumbhash');

async function thumbHash(input) {
  const { data, info } = await sharp(input)
    .rotate()
    .resize(100, 100, { fit: 'inside' })
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return Buffer.from(rgbaToThumbHash(info.width, info.height, data)).toString('base64');
}

async function main() {
  const [source, target] = process.argv.slice(2);
  const input = fs.readFileSync(source);
  const web = sharp(input)
    .rotate()
    .resize({ width: 2048, withoutEnlargement: true })
    .jpeg({ quality: 90, mozjpeg: true })
    .toBuffer();
  const [jpeg, hash] = await Promise.all([web, thumbHash(input)]);
  fs.writeFileSync(target, jpeg);
  console.log(hash);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
