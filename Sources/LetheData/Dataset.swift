import LetheTensor

/// Labelled 8-bit images of one size, stored N x C x H x W.
public struct LabeledImages: Sendable {
    public var pixels: [UInt8]
    public var labels: [Int]
    public var channels: Int, height: Int, width: Int

    public init(pixels: [UInt8], labels: [Int], channels: Int, height: Int, width: Int) {
        precondition(pixels.count == labels.count * channels * height * width)
        self.pixels = pixels
        self.labels = labels
        self.channels = channels
        self.height = height
        self.width = width
    }

    public var count: Int { labels.count }
    /// Classes 0..<classCount (one past the largest label).
    public var classCount: Int { (labels.max() ?? -1) + 1 }

    /// Images `indices` as floats in [0, 1], zero-padded (centred) to `size` x `size`:
    /// (n, C, size, size). Fashion-MNIST's 28x28 becomes 32x32 with a 2-pixel border.
    public func tensor(_ indices: [Int], size: Int) -> Tensor<Float> {
        precondition(size >= height && size >= width, "images of \(height)x\(width) do not fit in \(size)x\(size)")
        let top = (size - height) / 2
        let left = (size - width) / 2
        let plane = height * width
        var out = [Float](repeating: 0, count: indices.count * channels * size * size)
        for (n, i) in indices.enumerated() {
            for c in 0..<channels {
                let src = (i * channels + c) * plane
                let dst = (n * channels + c) * size * size
                for y in 0..<height {
                    for x in 0..<width {
                        out[dst + (y + top) * size + x + left] = Float(pixels[src + y * width + x]) / 255
                    }
                }
            }
        }
        return Tensor(out, shape: [indices.count, channels, size, size])
    }

    /// Indices of the samples whose label is in `classes`, in file order, at most `perClassLimit` per class.
    public func indices(ofClasses classes: some Sequence<Int>, perClassLimit: Int? = nil) -> [Int] {
        let wanted = Set(classes)
        var taken: [Int: Int] = [:]
        var out: [Int] = []
        for (i, label) in labels.enumerated() where wanted.contains(label) {
            if let limit = perClassLimit, taken[label, default: 0] >= limit { continue }
            taken[label, default: 0] += 1
            out.append(i)
        }
        return out
    }
}

/// Fashion-MNIST from Debian's dataset-fashion-mnist (gzip-compressed IDX).
public enum FashionMNIST {
    public static let defaultRoot = "/usr/share/datasets/fashion-mnist"
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    public enum Split: String, Sendable { case train, test }

    public static func load(root: String = defaultRoot, split: Split) throws(DataError) -> LabeledImages {
        let prefix = split == .train ? "train" : "t10k"
        let imagesPath = "\(root)/\(prefix)-images-idx3-ubyte.gz"
        let labelsPath = "\(root)/\(prefix)-labels-idx1-ubyte.gz"
        let images = try IDX.read(imagesPath)
        let labels = try IDX.read(labelsPath)
        guard images.dimensions.count == 3 else {
            throw DataError("expected images (rank 3), found rank \(images.dimensions.count)", path: imagesPath)
        }
        guard labels.dimensions.count == 1 else {
            throw DataError("expected labels (rank 1), found rank \(labels.dimensions.count)", path: labelsPath)
        }
        guard images.dimensions[0] == labels.dimensions[0] else {
            throw DataError(
                "\(images.dimensions[0]) images but \(labels.dimensions[0]) labels in \(labelsPath)", path: imagesPath)
        }
        if let bad = labels.bytes.firstIndex(where: { $0 >= 10 }) {
            throw DataError(
                "label \(labels.bytes[bad]) at sample \(bad) is not a Fashion-MNIST class (0...9)", path: labelsPath)
        }
        return LabeledImages(
            pixels: images.bytes, labels: labels.bytes.map(Int.init), channels: 1,
            height: images.dimensions[1], width: images.dimensions[2])
    }
}
