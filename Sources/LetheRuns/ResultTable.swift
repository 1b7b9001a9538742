import Foundation
import LetheJSON

/// The paper's table from eval.json files: one row per method (several seeds each), every cell a
/// point value with its 95% interval, and a mark where the interval overlaps the Original row's, so
/// a table never claims a difference its intervals do not support.
public struct ResultTable {
    /// One cell: the mean over seeds and its interval.
    public struct Cell: Equatable, Sendable {
        public var value: Double
        public var lo: Double?
        public var hi: Double?
        public var seeds: Int
        /// The interval overlaps the Original row's in the same column (nil on the Original row).
        public var overlapsOriginal: Bool?

        public init(value: Double, lo: Double?, hi: Double?, seeds: Int, overlapsOriginal: Bool? = nil) {
            (self.value, self.lo, self.hi, self.seeds, self.overlapsOriginal) = (value, lo, hi, seeds, overlapsOriginal)
        }

        public func overlaps(_ other: Cell) -> Bool? {
            guard let lo, let hi, let olo = other.lo, let ohi = other.hi else { return nil }
            return lo <= ohi && olo <= hi
        }
    }

    public struct Row: Sendable {
        public var name: String
        /// Per column (`split.metric`).
        public var cells: [String: Cell]
        /// A reference row (ground truth, mean fill, noise fill): a floor or ceiling, not a method.
        public var reference: Bool
    }

    public var columns: [(split: String, metric: String)]
    public var rows: [Row]
    /// The evaluation mask the cells are read from.
    public var mask: String?

    /// eval.json's reference completions and their row names.
    public static let references = [
        ("ground_truth", "ground truth"), ("mean_fill", "mean fill"), ("noise_fill", "noise fill"),
    ]

    /// `methods`: each row's name and its runs' eval.json files (one per seed). The Original row and
    /// the reference rows come from the first method's runs.
    public init(
        methods: [(name: String, evals: [JSONValue])], columns: [(split: String, metric: String)], mask: String?
    ) {
        self.columns = columns
        self.mask = mask
        var rows: [Row] = []
        func row(_ name: String, _ evals: [JSONValue], model: String, reference: Bool = false) -> Row? {
            var cells: [String: Cell] = [:]
            for (split, metric) in columns {
                if let c = Self.aggregate(evals, model: model, mask: mask, split: split, metric: metric) {
                    cells["\(split).\(metric)"] = c
                }
            }
            return cells.isEmpty ? nil : Row(name: name, cells: cells, reference: reference)
        }
        if let first = methods.first, let original = row("Original", first.evals, model: "original") {
            rows.append(original)
        }
        for m in methods { if let r = row(m.name, m.evals, model: "unlearned") { rows.append(r) } }
        if let first = methods.first {
            for (key, name) in Self.references {
                if let r = row(name, first.evals, model: key, reference: true) { rows.append(r) }
            }
        }
        if let original = rows.first(where: { $0.name == "Original" }) {
            for i in rows.indices where rows[i].name != "Original" && !rows[i].reference {
                for (key, cell) in rows[i].cells {
                    if let o = original.cells[key] { rows[i].cells[key]?.overlapsOriginal = cell.overlaps(o) }
                }
            }
        }
        self.rows = rows
    }

    /// One seed's value and interval of `model.split.metric` under `mask` (the headline mask when nil):
    /// `per_mask` when the run has it, else the headline values of older runs (no interval).
    /// KID's interval is its value plus or minus the std over subsets.
    public static func seedValue(_ eval: JSONValue, model: String, mask: String?, split: String, metric: String) -> (
        value: Double, lo: Double?, hi: Double?
    )? {
        if let masks = eval["per_mask"]?.arrayValue {
            let entry = mask.flatMap { name in masks.first { $0["name"]?.stringValue == name } } ?? masks.first
            if mask != nil && entry?["name"]?.stringValue != mask { return nil }
            guard let m = entry?[model]?[split]?[metric], let v = m["value"]?.doubleValue else { return nil }
            if let ci = m["ci95"]?.arrayValue, ci.count == 2, let lo = ci[0].doubleValue, let hi = ci[1].doubleValue {
                return (v, lo, hi)
            }
            if let std = m["std"]?.doubleValue { return (v, v - std, v + std) }
            return (v, nil, nil)
        }
        guard mask == nil, let v = eval[model]?[split]?[metric]?.doubleValue else { return nil }
        return (v, nil, nil)
    }

    /// One seed: its value and bootstrap interval. Several seeds: the mean, with a half width that
    /// joins the spread over seeds (t_{k-1} s / sqrt(k)) and the test-set uncertainty (the mean of the
    /// seeds' bootstrap half widths), sqrt(h_seeds^2 + h_test^2): every seed is measured on the same test
    /// images, so more seeds do not shrink the second part, and a model that does not change with the
    /// seed (the Original row) keeps its bootstrap interval instead of a zero-width one.
    public static func aggregate(_ evals: [JSONValue], model: String, mask: String?, split: String, metric: String)
        -> Cell?
    {
        let values = evals.compactMap { seedValue($0, model: model, mask: mask, split: split, metric: metric) }
        guard !values.isEmpty else { return nil }
        if values.count == 1 {
            return Cell(value: values[0].value, lo: values[0].lo, hi: values[0].hi, seeds: 1)
        }
        let k = Double(values.count)
        let mean = values.reduce(0) { $0 + $1.value } / k
        let s = (values.reduce(0) { $0 + ($1.value - mean) * ($1.value - mean) } / (k - 1)).squareRoot()
        let seedHalf = tQuantile975(degreesOfFreedom: values.count - 1) * s / k.squareRoot()
        let testHalves = values.compactMap { v in v.lo.flatMap { lo in v.hi.map { ($0 - lo) / 2 } } }
        let testHalf = testHalves.isEmpty ? 0 : testHalves.reduce(0, +) / Double(testHalves.count)
        let half = (seedHalf * seedHalf + testHalf * testHalf).squareRoot()
        return Cell(value: mean, lo: mean - half, hi: mean + half, seeds: values.count)
    }

    /// The 97.5% quantile of Student's t with `df` degrees of freedom (exact table to 30, then the
    /// normal's 1.96 approached as 1.96 + 2.4 / df).
    public static func tQuantile975(degreesOfFreedom df: Int) -> Double {
        let table: [Double] = [
            12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
            2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
        ]
        if df >= 1 && df <= table.count { return table[df - 1] }
        return 1.96 + 2.4 / Double(max(df, 1))
    }

    /// A metric's short column label (FID, KID, IS, cosine, PSNR, SSIM, acc).
    public static func label(_ metric: String) -> String {
        [
            "fid": "FID", "kid": "KID", "is": "IS", "cosine": "cosine", "psnr": "PSNR", "ssim": "SSIM",
            "accuracy": "acc",
        ][metric] ?? metric
    }

    /// A cell as text: `value [lo, hi]`, and ` ≈` when the interval overlaps the Original row's.
    public static func text(_ c: Cell?, format number: (Double) -> String) -> String {
        guard let c else { return "" }
        var s = number(c.value)
        if let lo = c.lo, let hi = c.hi { s += " [\(number(lo)), \(number(hi))]" }
        if c.overlapsOriginal == true { s += " ≈" }
        return s
    }
}
