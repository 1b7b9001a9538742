import Foundation
import LetheData
import LetheJSON
import LetheSpec

/// What differs between two finished runs: the resolved spec by path, metrics with the direction
/// that is better, checkpoint tensors (against each other and against the original model), the
/// sample images, and which files changed at all.
public struct RunDiff {
    public struct MetricDelta {
        public var name: String
        public var a: Double?, b: Double?
        /// "A", "B" or nil when the direction carries no judgement (or they are equal).
        public var better: String?
        public var delta: Double? { a.flatMap { a in b.map { $0 - a } } }
    }

    public struct TensorDelta {
        public var path: String
        public var shape: [Int]
        /// |B - A|, max |B - A|, |A|; nil where a side lacks the tensor or shapes differ.
        public var norm: Double?, maxAbs: Double?, normA: Double
        /// |A - original| and |B - original|, when the original model is known.
        public var fromOriginalA: Double?, fromOriginalB: Double?
    }

    public struct ImageCell {
        public var row: Int, column: Int
        public var meanAbs: Double, maxAbs: Double
    }

    public var a: RunRecord, b: RunRecord
    public var spec: [JSONDiff.Change] = []
    public var metrics: [MetricDelta] = []
    public var tensors: [TensorDelta] = []
    public var onlyInA: [String] = [], onlyInB: [String] = [], changedFiles: [String] = []
    public var imageCells: [ImageCell] = []
    public var imageNote: String?
    public var originalRun: String?

    public var differ: Bool { !onlyInA.isEmpty || !onlyInB.isEmpty || !changedFiles.isEmpty }

    /// Both runs must match their manifests (a tampered run is an error, not a difference).
    public init(_ pathA: String, _ pathB: String) throws {
        a = try RunRecord(pathA)
        b = try RunRecord(pathB)
        try a.requireIntact()
        try b.requireIntact()
        let volatile = RunDirectory.volatileFiles
        onlyInA = a.manifest.keys.filter { b.manifest[$0] == nil && !volatile.contains($0) }.sorted()
        onlyInB = b.manifest.keys.filter { a.manifest[$0] == nil && !volatile.contains($0) }.sorted()
        changedFiles = a.manifest.keys.filter { b.manifest[$0] != nil && b.manifest[$0] != a.manifest[$0] }.sorted()

        spec = JSONDiff.changes(try a.json("resolved.json"), try b.json("resolved.json"))
        metrics = Self.metricDeltas(try a.json("eval.json"), try b.json("eval.json"))
        originalRun = a.originalRun ?? b.originalRun
        let original = try originalRun.flatMap { try RunRecord($0).checkpoint() }
        tensors = Self.tensorDeltas(try a.checkpoint(), try b.checkpoint(), original: original)
        (imageCells, imageNote) = Self.imageCells(a, b)
    }

    // MARK: metrics

    static let lowerIsBetter: Set<String> = ["fid"]

    /// Every number in eval.json's model sections, by `model.split.metric`. The unlearned model is
    /// judged: on D_R closer to a good model is better (FID down, the rest up), on D_F further from
    /// the truth is better (the point of unlearning: FID up, the rest down).
    static func metricDeltas(_ ea: JSONValue?, _ eb: JSONValue?) -> [MetricDelta] {
        var out: [MetricDelta] = []
        for model in ["original", "unlearned", "ground_truth", "mean_fill", "noise_fill"] {
            for split in ["retain", "forget", "all"] {
                let ma = ea?[model]?[split]?.objectValue
                let mb = eb?[model]?[split]?.objectValue
                let names = (ma?.keys ?? []) + (mb?.keys ?? []).filter { ma?[$0] == nil }
                for name in names {
                    var d = MetricDelta(
                        name: "\(model).\(split).\(name)", a: ma?[name]?.doubleValue, b: mb?[name]?.doubleValue)
                    if model == "unlearned", split != "all", let x = d.a, let y = d.b, x != y {
                        let higherWins = lowerIsBetter.contains(name) == (split == "forget")
                        d.better = (y > x) == higherWins ? "B" : "A"
                    }
                    out.append(d)
                }
            }
        }
        return out
    }

    // MARK: tensors

    static func tensorDeltas(
        _ ta: [(path: String, shape: [Int], values: [Float])]?, _ tb: [(path: String, shape: [Int], values: [Float])]?,
        original: [(path: String, shape: [Int], values: [Float])]?
    ) -> [TensorDelta] {
        guard let ta else { return [] }
        let bByPath = Dictionary((tb ?? []).map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        let oByPath = Dictionary((original ?? []).map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        func distance(_ x: [Float], _ y: [Float]) -> (Double, Double) {
            var s = 0.0
            var m = 0.0
            for i in x.indices {
                let d = abs(Double(y[i]) - Double(x[i]))
                s += d * d
                m = max(m, d)
            }
            return (s.squareRoot(), m)
        }
        return ta.map { t in
            let normA = t.values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            var d = TensorDelta(
                path: t.path, shape: t.shape, norm: nil, maxAbs: nil, normA: normA, fromOriginalA: nil,
                fromOriginalB: nil)
            if let u = bByPath[t.path], u.shape == t.shape { (d.norm, d.maxAbs) = distance(t.values, u.values) }
            if let o = oByPath[t.path], o.shape == t.shape {
                d.fromOriginalA = distance(o.values, t.values).0
                if let u = bByPath[t.path], u.shape == t.shape { d.fromOriginalB = distance(o.values, u.values).0 }
            }
            return d
        }
    }

    /// One layer's change: |B - A| and each run's distance from the original, over the layer's tensors.
    public struct LayerDelta: Sendable {
        public var layer: String
        public var norm: Double?
        public var fromOriginalA: Double?
        public var fromOriginalB: Double?
    }

    /// Tensors grouped by layer (the path less its last component), norms combined.
    public var layers: [LayerDelta] {
        var order: [String] = []
        var squares: [String: LayerDelta] = [:]
        func add(_ x: Double?, _ y: Double?) -> Double? { x.flatMap { x in y.map { x + $0 * $0 } } }
        for t in tensors {
            let layer = t.path.split(separator: ".").dropLast().joined(separator: ".")
            var c =
                squares[layer]
                ?? {
                    order.append(layer)
                    return LayerDelta(
                        layer: layer.isEmpty ? "(root)" : layer, norm: 0, fromOriginalA: 0, fromOriginalB: 0)
                }()
            c.norm = add(c.norm, t.norm)
            c.fromOriginalA = add(c.fromOriginalA, t.fromOriginalA)
            c.fromOriginalB = add(c.fromOriginalB, t.fromOriginalB)
            squares[layer] = c
        }
        return order.compactMap { squares[$0] }.map { c in
            LayerDelta(
                layer: c.layer, norm: c.norm.map { $0.squareRoot() },
                fromOriginalA: c.fromOriginalA.map { $0.squareRoot() },
                fromOriginalB: c.fromOriginalB.map { $0.squareRoot() })
        }
    }

    // MARK: images

    static func imageCells(_ a: RunRecord, _ b: RunRecord) -> ([ImageCell], String?) {
        guard let ia = try? Codecs.readPNG(a.path + "/samples.png"),
            let ib = try? Codecs.readPNG(b.path + "/samples.png")
        else {
            return ([], "no samples.png on one side")
        }
        guard ia.width == ib.width, ia.height == ib.height, ia.channels == ib.channels else {
            return ([], "sample grids differ in size (\(ia.width)x\(ia.height) vs \(ib.width)x\(ib.height))")
        }
        let size = (try? a.json("resolved.json"))?["data"]?["image_size"]?.intValue ?? 32
        let gutter = 2
        let columns = (ia.width - gutter) / (size + gutter)
        let rows = (ia.height - gutter) / (size + gutter)
        var cells: [ImageCell] = []
        for r in 0..<rows {
            for c in 0..<columns {
                var sum = 0.0
                var peak = 0.0
                for y in 0..<size {
                    for x in 0..<size {
                        let py = gutter + r * (size + gutter) + y
                        let px = gutter + c * (size + gutter) + x
                        for ch in 0..<ia.channels {
                            let i = (py * ia.width + px) * ia.channels + ch
                            let d = abs(Double(ia.pixels[i]) - Double(ib.pixels[i])) / 255
                            sum += d
                            peak = max(peak, d)
                        }
                    }
                }
                cells.append(
                    ImageCell(row: r, column: c, meanAbs: sum / Double(size * size * ia.channels), maxAbs: peak))
            }
        }
        return (cells, nil)
    }

    /// A, B and |A - B| (amplified 4x) side by side, as one PNG.
    public func writeSideBySide(to path: String) throws {
        let ia = try Codecs.readPNG(a.path + "/samples.png")
        let ib = try Codecs.readPNG(b.path + "/samples.png")
        guard ia.width == ib.width, ia.height == ib.height, ia.channels == ib.channels else {
            throw RunError(imageNote ?? "sample grids differ in size")
        }
        let gap = 8
        let w = ia.width
        let ch = ia.channels
        let width = 3 * w + 2 * gap
        var pixels = [UInt8](repeating: 255, count: width * ia.height * ch)
        for y in 0..<ia.height {
            for x in 0..<w {
                for c in 0..<ch {
                    let i = (y * w + x) * ch + c
                    let diff = min(255, 4 * abs(Int(ia.pixels[i]) - Int(ib.pixels[i])))
                    pixels[(y * width + x) * ch + c] = ia.pixels[i]
                    pixels[(y * width + w + gap + x) * ch + c] = ib.pixels[i]
                    pixels[(y * width + 2 * (w + gap) + x) * ch + c] = UInt8(255 - diff)
                }
            }
        }
        try FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try Codecs.writePNG(Codecs.Image(width: width, height: ia.height, channels: ch, pixels: pixels), to: path)
    }
}
