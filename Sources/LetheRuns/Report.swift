import Foundation
import LetheJSON
import LetheSpec

/// A run's self-contained HTML report (tables, SVG plots, the sample grid inlined as a data URI) and
/// its SVG plots, written as plain text so they diff and open anywhere without a network.
enum Report {
    struct Series {
        var label: String
        var color: String
        var values: [Double]
    }

    struct PointGroup {
        var label: String
        var color: String
        var filled: Bool
        var points: [(Double, Double)]
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    /// Numbers in SVG and HTML with fixed precision, so the files are stable across runs.
    static func format(_ x: Double, _ digits: Int = 4) -> String {
        x.isFinite ? String(format: "%.\(digits)g", x) : (x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf"))
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A scatter plot of 2-D points in groups (the embedding plot).
    static func scatterSVG(title: String, groups: [PointGroup], width: Int = 520, height: Int = 420) -> String {
        let all = groups.flatMap(\.points)
        let xs = all.map(\.0)
        let ys = all.map(\.1)
        let (x0, x1) = (xs.min() ?? 0, xs.max() ?? 1)
        let (y0, y1) = (ys.min() ?? 0, ys.max() ?? 1)
        let (left, top, right, bottom) = (40.0, 30.0, 150.0, 30.0)
        let pw = Double(width) - left - right
        let ph = Double(height) - top - bottom
        func px(_ x: Double) -> String { format(left + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * pw, 6) }
        func py(_ y: Double) -> String { format(top + ph - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * ph, 6) }
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<text x=\"\(Int(left))\" y=\"18\" font-size=\"14\">\(escape(title))</text>\n"
        out +=
            "<rect x=\"\(Int(left))\" y=\"\(Int(top))\" width=\"\(Int(pw))\" height=\"\(Int(ph))\" fill=\"none\" stroke=\"#999\"/>\n"
        for (g, group) in groups.enumerated() {
            let fill = group.filled ? group.color : "none"
            for p in group.points {
                out +=
                    "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1))\" r=\"2.5\" fill=\"\(fill)\" stroke=\"\(group.color)\" opacity=\"0.7\"/>\n"
            }
            let ly = Int(top) + 16 * g + 8
            out +=
                "<circle cx=\"\(width - Int(right) + 14)\" cy=\"\(ly)\" r=\"4\" fill=\"\(fill)\" stroke=\"\(group.color)\"/>"
            out += "<text x=\"\(width - Int(right) + 24)\" y=\"\(ly + 4)\">\(escape(group.label))</text>\n"
        }
        return out + "</svg>\n"
    }

    /// Line plot of per-step series (the training curve).
    static func curveSVG(title: String, series: [Series], width: Int = 520, height: Int = 300) -> String {
        let finite = series.flatMap(\.values).filter(\.isFinite)
        let (lo, hi) = (min(0, finite.min() ?? 0), finite.max() ?? 1)
        let steps = max(2, series.map(\.values.count).max() ?? 2)
        let (left, top, right, bottom) = (50.0, 30.0, 130.0, 30.0)
        let pw = Double(width) - left - right
        let ph = Double(height) - top - bottom
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<text x=\"\(Int(left))\" y=\"18\" font-size=\"14\">\(escape(title))</text>\n"
        out +=
            "<rect x=\"\(Int(left))\" y=\"\(Int(top))\" width=\"\(Int(pw))\" height=\"\(Int(ph))\" fill=\"none\" stroke=\"#999\"/>\n"
        out +=
            "<text x=\"4\" y=\"\(Int(top) + 10)\">\(format(hi, 3))</text><text x=\"4\" y=\"\(Int(top + ph))\">\(format(lo, 3))</text>\n"
        out +=
            "<text x=\"\(Int(left))\" y=\"\(height - 8)\">step 1</text><text x=\"\(Int(left + pw) - 50)\" y=\"\(height - 8)\">step \(steps)</text>\n"
        for (k, s) in series.enumerated() {
            let points = s.values.enumerated().filter { $0.element.isFinite }.map { i, v in
                format(left + Double(i) / Double(steps - 1) * pw, 6) + ","
                    + format(top + ph - (hi > lo ? (v - lo) / (hi - lo) : 0.5) * ph, 6)
            }
            out +=
                "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
            let ly = Int(top) + 16 * k + 8
            out +=
                "<line x1=\"\(width - Int(right) + 8)\" y1=\"\(ly)\" x2=\"\(width - Int(right) + 22)\" y2=\"\(ly)\" stroke=\"\(s.color)\" stroke-width=\"2\"/>"
            out += "<text x=\"\(width - Int(right) + 26)\" y=\"\(ly + 4)\">\(escape(s.label))</text>\n"
        }
        return out + "</svg>\n"
    }

    /// `eval.json`'s model x split x metric numbers as an HTML table: rows are models, columns
    /// split/metric.
    static func metricsTable(_ eval: JSONValue, models: [String]) -> String {
        let splits = ["retain", "forget", "all"].filter { eval["images"]?[$0] != nil }
        var names: [String] = []
        for model in models {
            for split in splits {
                for key in eval[model]?[split]?.objectValue?.keys ?? [] where !names.contains(key) { names.append(key) }
            }
        }
        var out = "<table>\n<tr><th rowspan=\"2\">model</th>"
        for split in splits {
            out +=
                "<th colspan=\"\(names.count)\">\(["retain": "D_R (retain)", "forget": "D_F (forget)"][split] ?? "all classes")</th>"
        }
        out +=
            "</tr>\n<tr>" + splits.map { _ in names.map { "<th>\(escape(metricLabel($0)))</th>" }.joined() }.joined()
            + "</tr>\n"
        for model in models where eval[model] != nil {
            out += "<tr><td>\(escape(model))</td>"
            for split in splits {
                for n in names { out += "<td>\(eval[model]?[split]?[n]?.doubleValue.map { format($0) } ?? "")</td>" }
            }
            out += "</tr>\n"
        }
        return out + "</table>\n"
    }

    static func metricLabel(_ key: String) -> String {
        [
            "fid": "FID ↓ gen. vs truth", "is": "IS", "cosine": "cosine", "psnr": "PSNR (dB)", "ssim": "SSIM",
            "accuracy": "class accuracy",
        ][key] ?? key
    }

    /// The whole page. `sections` are (heading, HTML) pairs placed in order.
    static func html(title: String, facts: [(String, String)], sections: [(String, String)]) -> String {
        var out = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>
            body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
            table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
            td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
            th { background: #f4f4f4; } td:first-child { text-align: left; }
            code { background: #f4f4f4; padding: 0 3px; } img { image-rendering: pixelated; }
            </style></head><body>
            <h1>\(escape(title))</h1>
            <table>

            """
        for (k, v) in facts { out += "<tr><td>\(escape(k))</td><td><code>\(escape(v))</code></td></tr>\n" }
        out += "</table>\n"
        for (heading, body) in sections { out += "<h2>\(escape(heading))</h2>\n\(body)\n" }
        return out + "</body></html>\n"
    }

    static func pngImage(_ bytes: [UInt8], alt: String, scale: Int = 3, width: Int) -> String {
        "<img alt=\"\(escape(alt))\" width=\"\(width * scale)\" src=\"data:image/png;base64,\(Data(bytes).base64EncodedString())\">"
    }
}

/// What a finished unlearn or evaluate run puts in its report: the metrics table, the training
/// curve, the embedding plot (PCA of the feature classifier's features of the completed images) and
/// the sample grid.
struct RunReport {
    var plan: Plan
    var eval: JSONValue
    var curve: [String]
    var models: [(name: String, result: ModelEvaluator.Result)]
    var curveKeys: [String]

    func write(into dir: RunDirectory) throws {
        var sections: [(String, String)] = []
        sections.append(
            (
                "Metrics",
                Report.metricsTable(eval, models: models.map(\.name) + ["mean_fill_baseline"])
                    + "<p>Completions of the masked held-out test images against their ground truth. FID, IS, cosine and class accuracy are measured in the feature space of Lethe's own feature classifier (Inception and CLIP weights cannot be downloaded here). Good on D_R: close to the original. Good on D_F: far from it (FID up, cosine and accuracy down).</p>"
            ))
        let rows = curve.compactMap { try? JSONParser.parse($0) }
        if !rows.isEmpty, !curveKeys.isEmpty {
            let svg = Report.curveSVG(
                title: "training curve",
                series: curveKeys.enumerated().map { i, key in
                    Report.Series(
                        label: key, color: Report.palette[i % Report.palette.count],
                        values: rows.map { $0[key]?.doubleValue ?? .nan })
                })
            try dir.write("curve.svg", text: svg)
            sections.append(("Training curve", svg))
        }
        let withFeatures = models.filter { !$0.result.features.isEmpty }
        if let d = withFeatures.first?.result.featureWidth, d > 1 {
            var groups: [(String, String, Bool, [Float])] = []
            for (m, model) in withFeatures.enumerated() {
                for (s, split) in ["retain", "forget", "all"].enumerated() {
                    if let f = model.result.features[split] {
                        groups.append(("\(model.name) \(split)", Report.palette[s], m == 0, f))
                    }
                }
            }
            let points = Metrics.pca2(groups.flatMap(\.3), d: d)
            var offset = 0
            let svg = Report.scatterSVG(
                title: "completed images, feature-space PCA",
                groups: groups.map { g in
                    let n = g.3.count / d
                    defer { offset += n }
                    return Report.PointGroup(
                        label: g.0, color: g.1, filled: g.2, points: Array(points[offset..<(offset + n)]))
                })
            try dir.write("embedding.svg", text: svg)
            sections.append(
                (
                    "Embeddings",
                    svg
                        + "<p>Filled: \(Report.escape(withFeatures[0].name)); hollow: \(Report.escape(withFeatures.dropFirst().map(\.name).joined(separator: ", "))). Blue: retain classes; red: forget classes.</p>"
                ))
        }
        if let png = FileManager.default.contents(atPath: dir.path("samples.png")) {
            let size = plan.spec.data.imageSize
            let k = max(1, plan.spec.evaluate.gridSamples / 2)
            sections.append(
                (
                    "Samples",
                    Report.pngImage([UInt8](png), alt: "sample grid", width: 2 * k * (size + 2))
                        + "<p>Rows: masked input, ground truth, \(models.map(\.name).joined(separator: ", ")). Left half: retain classes; right half: forget classes.</p>"
                ))
        }
        sections.append(("Evaluation (eval.json)", "<pre>\(Report.escape(JSONText.pretty(eval)))</pre>"))
        let facts: [(String, String)] = [
            ("config hash", plan.configHash), ("kind", plan.kind),
            ("method", plan.spec.unlearn?.method.rawValue ?? "-"),
            ("model", plan.spec.model.architecture.rawValue),
            ("tool", "lethe " + LetheVersion.current),
        ]
        try dir.write(
            "report.html",
            text: Report.html(
                title: "Lethe run \(plan.spec.name ?? String(plan.configHash.prefix(12)))",
                facts: facts, sections: sections))
    }
}
