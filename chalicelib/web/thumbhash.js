// ThumbHash decoder (the published format by Evan Wallace, https://evanw.github.io/thumbhash/).
// A hash holds a DC colour and low-frequency cosine coefficients in the LPQ(A) colour space:
// bytes 0-2: L, P, Q DC, L scale, alpha flag; bytes 3-4: L count, P/Q scales, landscape flag;
// byte 5 (alpha only): A DC and scale; then one 4-bit coefficient per nibble, low nibble first.
"use strict";
(function (global) {
  function header(hash) {
    var h24 = hash[0] | (hash[1] << 8) | (hash[2] << 16);
    var h16 = hash[3] | (hash[4] << 8);
    var alpha = (h24 >> 23) !== 0;
    var landscape = (h16 >> 15) !== 0;
    var count = h16 & 7;
    var longSide = alpha ? 5 : 7;
    return {
      h24: h24, h16: h16, alpha: alpha,
      lx: Math.max(3, landscape ? longSide : count),
      ly: Math.max(3, landscape ? count : longSide)
    };
  }

  // Width and height of the decoded image: 32 px on the long side, the hash's aspect ratio.
  function size(hash, base) {
    var head = header(hash);
    var ratio = head.lx / head.ly;
    base = base || 32;
    return ratio > 1
      ? { w: base, h: Math.round(base / ratio) }
      : { w: Math.round(base * ratio), h: base };
  }

  // Decode to { w, h, rgba } (a Uint8ClampedArray of w * h * 4 bytes).
  function toRGBA(hash) {
    if (hash.length < 5) throw new Error("a ThumbHash has at least 5 bytes");
    var head = header(hash);
    var h24 = head.h24, h16 = head.h16, alpha = head.alpha, lx = head.lx, ly = head.ly;
    var lDC = (h24 & 63) / 63;
    var pDC = ((h24 >> 6) & 63) / 31.5 - 1;
    var qDC = ((h24 >> 12) & 63) / 31.5 - 1;
    var lScale = ((h24 >> 18) & 31) / 31;
    var pScale = ((h16 >> 3) & 63) / 63;
    var qScale = ((h16 >> 9) & 63) / 63;
    var aDC = alpha ? (hash[5] & 15) / 15 : 1;
    var aScale = alpha ? (hash[5] >> 4) / 15 : 0;
    var start = alpha ? 6 : 5;
    var nibble = 0;

    // Coefficients of one channel, in the triangle cx * ny < nx * (ny - cy) without the DC term.
    function channel(nx, ny, scale) {
      var out = [];
      for (var cy = 0; cy < ny; cy++) {
        for (var cx = cy ? 0 : 1; cx * ny < nx * (ny - cy); cx++) {
          var byte = hash[start + (nibble >> 1)];
          if (byte === undefined) throw new Error("the ThumbHash is cut short");
          var bits = (byte >> ((nibble & 1) << 2)) & 15;
          out.push((bits / 7.5 - 1) * scale);
          nibble++;
        }
      }
      return out;
    }

    // The 1.25 saturation boost is the reference decoder's (the encoder stores P and Q muted).
    var lAC = channel(lx, ly, lScale);
    var pAC = channel(3, 3, pScale * 1.25);
    var qAC = channel(3, 3, qScale * 1.25);
    var aAC = alpha ? channel(5, 5, aScale) : null;

    var dims = size(hash);
    var w = dims.w, h = dims.h;
    var rgba = new Uint8ClampedArray(w * h * 4);
    var nx = Math.max(lx, alpha ? 5 : 3), ny = Math.max(ly, alpha ? 5 : 3);
    var fx = new Float64Array(nx), fy = new Float64Array(ny);
    var i = 0;
    for (var y = 0; y < h; y++) {
      for (var cy = 0; cy < ny; cy++) fy[cy] = Math.cos((Math.PI / h) * (y + 0.5) * cy);
      for (var x = 0; x < w; x++, i += 4) {
        for (var cx = 0; cx < nx; cx++) fx[cx] = Math.cos((Math.PI / w) * (x + 0.5) * cx);
        var l = lDC, p = pDC, q = qDC, a = aDC, j, f2, c, k;
        for (c = 0, j = 0; c < ly; c++) {
          f2 = fy[c] * 2;
          for (k = c ? 0 : 1; k * ly < lx * (ly - c); k++, j++) l += lAC[j] * fx[k] * f2;
        }
        for (c = 0, j = 0; c < 3; c++) {
          f2 = fy[c] * 2;
          for (k = c ? 0 : 1; k < 3 - c; k++, j++) {
            p += pAC[j] * fx[k] * f2;
            q += qAC[j] * fx[k] * f2;
          }
        }
        if (aAC) {
          for (c = 0, j = 0; c < 5; c++) {
            f2 = fy[c] * 2;
            for (k = c ? 0 : 1; k < 5 - c; k++, j++) a += aAC[j] * fx[k] * f2;
          }
        }
        // LPQ to RGB: L is luminance, P yellow-blue, Q red-green.
        var b = l - (2 / 3) * p;
        var r = (3 * l - b + q) / 2;
        var g = r - q;
        rgba[i] = Math.round(255 * Math.min(1, Math.max(0, r)));
        rgba[i + 1] = Math.round(255 * Math.min(1, Math.max(0, g)));
        rgba[i + 2] = Math.round(255 * Math.min(1, Math.max(0, b)));
        rgba[i + 3] = Math.round(255 * Math.min(1, Math.max(0, a)));
      }
    }
    return { w: w, h: h, rgba: rgba };
  }

  function fromBase64(text) {
    var raw = atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var n = 0; n < raw.length; n++) bytes[n] = raw.charCodeAt(n);
    return bytes;
  }

  // Paint a hash (standard base64) into a canvas at its decoded size; false if it is unreadable.
  function paint(canvas, base64) {
    try {
      var img = toRGBA(fromBase64(base64));
      canvas.width = img.w;
      canvas.height = img.h;
      canvas.getContext("2d").putImageData(new ImageData(img.rgba, img.w, img.h), 0, 0);
      return true;
    } catch (err) {
      return false;
    }
  }

  global.ThumbHash = { toRGBA: toRGBA, size: size, fromBase64: fromBase64, paint: paint };
})(window);
