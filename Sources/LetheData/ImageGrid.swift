import LetheTensor

/// Sample sheets: rows of images (e.g. masked input, ground truth, original model, unlearned model)
/// laid out with a 2-pixel gutter, written as one PNG.
public enum ImageGrid {
    /// `rows[r]` is (n, C, H, W) with values in [0, 1] (clamped); every row has the same shape.
    public static func image(rows: [Tensor<Float>], gutter: Int = 2) -> Codecs.Image {
        let (n, c, h, w) = (rows[0].shape[0], rows[0].shape[1], rows[0].shape[2], rows[0].shape[3])
        precondition(rows.allSatisfy { $0.shape == rows[0].shape }, "grid rows must share one shape")
        let channels = c == 1 ? 1 : 3
        let width = n * w + (n + 1) * gutter
        let height = rows.count * h + (rows.count + 1) * gutter
        var pixels = [UInt8](repeating: 255, count: width * height * channels)
        for (r, row) in rows.enumerated() {
            for i in 0..<n {
                for y in 0..<h {
                    for x in 0..<w {
                        let py = gutter + r * (h + gutter) + y
                        let px = gutter + i * (w + gutter) + x
                        for ch in 0..<channels {
                            let v = row.storage[((i * c + min(ch, c - 1)) * h + y) * w + x]
                            // NaN (a diverged model) shows black.
                            pixels[(py * width + px) * channels + ch] =
                                v.isNaN ? 0 : UInt8((min(max(v, 0), 1) * 255).rounded())
                        }
                    }
                }
            }
        }
        return Codecs.Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    public static func write(rows: [Tensor<Float>], to path: String) throws(DataError) {
        try Codecs.writePNG(image(rows: rows), to: path)
    }
}
