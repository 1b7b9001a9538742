import Foundation
import LetheFiles
import LetheTensor

/// Users' own data: a folder of PNGs in one sub-folder per class (torchvision's ImageFolder), or a
/// NumPy `.npz` with x_train, y_train and optionally x_test, y_test. Without a test set, a fixed
/// share of each class is held out for evaluation (the same images on every machine).
public enum UserData {
    public struct Splits: Sendable {
        public var train: LabeledImages
        public var test: LabeledImages
        public var classNames: [String]
        public var pair: (train: LabeledImages, test: LabeledImages) { (train, test) }
    }

    /// The most classes a data set may have: labels index per-class tables, so a label of 2^62 would
    /// ask for an absurd table rather than name a class.
    public static let maxClasses = 100_000

    // MARK: NumPy

    public static func npz(_ path: String, testFraction: Double) throws(DataError) -> Splits {
        try arrays(try NumPy.readNPZ(path), path: path, testFraction: testFraction)
    }

    /// A folder of x_train.npy, y_train.npy and optionally x_test.npy, y_test.npy.
    public static func npyFolder(_ root: String, testFraction: Double) throws(DataError) -> Splits {
        var found: [String: NumPy.Array] = [:]
        for name in ["x_train", "y_train", "x_test", "y_test"] {
            let path = root + "/" + name + ".npy"
            guard FileKind.of(path) != nil else { continue }
            found[name] = try NumPy.parseNPY(try DataFile.read(path), path: path)
        }
        return try arrays(found, path: root, testFraction: testFraction)
    }

    static func arrays(_ arrays: [String: NumPy.Array], path: String, testFraction: Double) throws(DataError) -> Splits
    {
        guard let x = arrays["x_train"], let y = arrays["y_train"] else {
            throw DataError(
                "needs arrays x_train and y_train (and optionally x_test, y_test); it has \(arrays.keys.sorted().joined(separator: ", "))",
                path: path)
        }
        let train = try images(x, y, path: path, names: ("x_train", "y_train"))
        if let xt = arrays["x_test"] {
            guard let yt = arrays["y_test"] else { throw DataError("has x_test but no y_test", path: path) }
            let test = try images(xt, yt, path: path, names: ("x_test", "y_test"))
            guard (test.channels, test.height, test.width) == (train.channels, train.height, train.width) else {
                throw DataError(
                    "x_test images are \(test.channels)x\(test.height)x\(test.width), x_train's \(train.channels)x\(train.height)x\(train.width)",
                    path: path)
            }
            return Splits(
                train: train, test: test, classNames: (0..<max(train.classCount, test.classCount)).map(String.init))
        }
        let (a, b) = train.holdingOut(testFraction)
        return Splits(train: a, test: b, classNames: (0..<train.classCount).map(String.init))
    }

    /// (N, H, W), (N, H, W, C) with C 1 or 3 (NumPy's channel-last), or (N, C, H, W) with C 1 or 3;
    /// uint8 0-255 or floats in [0, 1]. Labels: integers 0...
    static func images(_ x: NumPy.Array, _ y: NumPy.Array, path: String, names: (String, String)) throws(DataError)
        -> LabeledImages
    {
        let s = x.shape
        let (n, c, h, w, channelLast): (Int, Int, Int, Int, Bool)
        switch s.count {
        case 3: (n, c, h, w, channelLast) = (s[0], 1, s[1], s[2], false)
        case 4 where s[3] == 1 || s[3] == 3: (n, c, h, w, channelLast) = (s[0], s[3], s[1], s[2], true)
        case 4 where s[1] == 1 || s[1] == 3: (n, c, h, w, channelLast) = (s[0], s[1], s[2], s[3], false)
        default:
            throw DataError(
                "\(names.0) has shape \(s); expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3", path: path)
        }
        guard n > 0 else { throw DataError("\(names.0) holds no images (shape \(s))", path: path) }
        guard c * h * w > 0 else { throw DataError("\(names.0) has empty images (shape \(s))", path: path) }
        guard y.shape == [n] || y.shape == [n, 1] else {
            throw DataError("\(names.1) has shape \(y.shape); expected (\(n),) to match \(names.0)", path: path)
        }
        guard [.u1, .i1, .u2, .i2, .u4, .i4, .u8, .i8].contains(y.dtype) else {
            throw DataError("\(names.1) is \(y.dtype.rawValue); labels must be integers", path: path)
        }
        let rawLabels = y.values()
        if let bad = rawLabels.firstIndex(where: { !($0 >= 0 && $0 < Double(maxClasses)) }) {
            throw DataError(
                "\(names.1)[\(bad)] = \(String(format: "%.0f", rawLabels[bad])); labels must lie in 0..<\(maxClasses) (one class per label value, so a label is also a class count)",
                path: path)
        }
        let labels = rawLabels.map { Int($0) }
        var pixels = [UInt8](repeating: 0, count: n * c * h * w)
        let values: [Double]
        let isFloat = x.dtype == .f4 || x.dtype == .f8
        if x.dtype == .u1 { values = [] } else { values = x.values() }
        if isFloat, let bad = values.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
            throw DataError(
                "\(names.0) holds \(values[bad]) at flat index \(bad); float images must lie in [0, 1]", path: path)
        }
        if !isFloat, x.dtype != .u1, let bad = values.firstIndex(where: { $0 < 0 || $0 > 255 }) {
            throw DataError(
                "\(names.0) holds \(values[bad]) at flat index \(bad); integer images must lie in 0...255", path: path)
        }
        for i in 0..<n {
            for ch in 0..<c {
                for yy in 0..<h {
                    for xx in 0..<w {
                        let src = channelLast ? ((i * h + yy) * w + xx) * c + ch : ((i * c + ch) * h + yy) * w + xx
                        let dst = ((i * c + ch) * h + yy) * w + xx
                        pixels[dst] =
                            x.dtype == .u1 ? x.bytes[src] : UInt8((isFloat ? values[src] * 255 : values[src]).rounded())
                    }
                }
            }
        }
        return LabeledImages(pixels: pixels, labels: labels, channels: c, height: h, width: w)
    }

    // MARK: image folders

    /// `root/train/<class>/*.png` and `root/test/<class>/*.png`, or `root/<class>/*.png` with a held
    /// out test share. Classes are the sub-folder names in sorted order (label 0 is the first).
    public static func imageFolder(_ root: String, testFraction: Double) throws(DataError) -> Splits {
        let fm = FileManager.default
        func isDirectory(_ p: String) -> Bool {
            var d: ObjCBool = false
            return fm.fileExists(atPath: p, isDirectory: &d) && d.boolValue
        }
        let hasTrain = isDirectory(root + "/train")
        let trainRoot = hasTrain ? root + "/train" : root
        let classes = ((try? fm.contentsOfDirectory(atPath: trainRoot)) ?? []).filter {
            isDirectory(trainRoot + "/" + $0) && !(!hasTrain && $0 == "test")
        }.sorted()
        guard !classes.isEmpty else {
            throw DataError("no class sub-folders (expected <class>/*.png or train/<class>/*.png)", path: trainRoot)
        }
        let train = try folder(trainRoot, classes: classes)
        if hasTrain, isDirectory(root + "/test") {
            let testClasses = ((try? fm.contentsOfDirectory(atPath: root + "/test")) ?? []).filter {
                isDirectory(root + "/test/" + $0)
            }.sorted()
            if let unknown = testClasses.first(where: { !classes.contains($0) }) {
                throw DataError(
                    "test class '\(unknown)' has no training folder (classes: \(classes.joined(separator: ", ")))",
                    path: root + "/test")
            }
            let test = try folder(root + "/test", classes: classes, like: train)
            return Splits(train: train, test: test, classNames: classes)
        }
        let (a, b) = train.holdingOut(testFraction)
        return Splits(train: a, test: b, classNames: classes)
    }

    static func folder(_ root: String, classes: [String], like reference: LabeledImages? = nil) throws(DataError)
        -> LabeledImages
    {
        var pixels: [UInt8] = []
        var labels: [Int] = []
        var geometry: (Int, Int, Int, String)? = reference.map {
            ($0.channels, $0.height, $0.width, "the training images")
        }
        for (label, name) in classes.enumerated() {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + name)) ?? []).filter {
                $0.lowercased().hasSuffix(".png")
            }.sorted()
            if files.isEmpty && reference == nil {
                throw DataError(
                    "class folder '\(name)' holds no PNG images; every class needs at least one (or remove the folder)",
                    path: root + "/" + name)
            }
            for file in files {
                let path = root + "/" + name + "/" + file
                let image = try Codecs.readPNG(path)
                if let g = geometry {
                    guard (image.channels, image.height, image.width) == (g.0, g.1, g.2) else {
                        throw DataError(
                            "is \(image.width)x\(image.height) with \(image.channels) channel(s), unlike \(g.3) (\(g.2)x\(g.1), \(g.0)); resize the folder to one size",
                            path: path)
                    }
                } else {
                    geometry = (image.channels, image.height, image.width, path)
                }
                // Interleaved rows -> planes.
                let plane = image.width * image.height
                var planes = [UInt8](repeating: 0, count: plane * image.channels)
                for p in 0..<plane {
                    for c in 0..<image.channels { planes[c * plane + p] = image.pixels[p * image.channels + c] }
                }
                pixels += planes
                labels.append(label)
            }
        }
        guard let g = geometry, !labels.isEmpty else {
            throw DataError("no PNG images in the class folders", path: root)
        }
        return LabeledImages(pixels: pixels, labels: labels, channels: g.0, height: g.1, width: g.2)
    }
}

extension LabeledImages {
    /// Splits off `fraction` of every class (at least one image of a class with two or more) as a test
    /// set, chosen by a fixed seeded permutation so every machine holds out the same images. Both
    /// keep file order.
    public func holdingOut(_ fraction: Double) -> (train: LabeledImages, test: LabeledImages) {
        var rng = Philox(seed: 0).split("held-out test split")
        var testSet = Set<Int>()
        for c in 0..<classCount {
            let members = labels.indices.filter { labels[$0] == c }
            guard members.count > 1 else { continue }
            let k = min(members.count - 1, max(1, Int((Double(members.count) * fraction).rounded())))
            for j in rng.permutation(members.count).prefix(k) { testSet.insert(members[j]) }
        }
        let trainIDs = labels.indices.filter { !testSet.contains($0) }
        let testIDs = labels.indices.filter(testSet.contains)
        return (subset(trainIDs), subset(testIDs))
    }

    public func subset(_ ids: [Int]) -> LabeledImages {
        let size = channels * height * width
        var out = [UInt8]()
        out.reserveCapacity(ids.count * size)
        for i in ids { out += pixels[(i * size)..<((i + 1) * size)] }
        return LabeledImages(
            pixels: out, labels: ids.map { labels[$0] }, channels: channels, height: height, width: width)
    }

    /// Images larger than `size` on a side are scaled down (area averaging, aspect kept) to fit;
    /// `tensor(_:size:)` then pads them to the square.
    public func fitting(_ size: Int) -> LabeledImages {
        guard height > size || width > size else { return self }
        let scale = Double(max(height, width)) / Double(size)
        let nh = max(1, Int((Double(height) / scale).rounded()))
        let nw = max(1, Int((Double(width) / scale).rounded()))
        var out = [UInt8](repeating: 0, count: count * channels * nh * nw)
        for p in 0..<(count * channels) {
            for y in 0..<nh {
                let y0 = y * height / nh
                let y1 = max(y0 + 1, (y + 1) * height / nh)
                for x in 0..<nw {
                    let x0 = x * width / nw
                    let x1 = max(x0 + 1, (x + 1) * width / nw)
                    var sum = 0
                    for yy in y0..<y1 { for xx in x0..<x1 { sum += Int(pixels[(p * height + yy) * width + xx]) } }
                    out[(p * nh + y) * nw + x] = UInt8((Double(sum) / Double((y1 - y0) * (x1 - x0))).rounded())
                }
            }
        }
        return LabeledImages(pixels: out, labels: labels, channels: channels, height: nh, width: nw)
    }
}
