import Foundation
import LetheJSON
import LetheSpec

/// A run's self-contained HTML report (tables, SVG plots, the sample grid inlined as a data URI) and
/// its SVG plots, written as plain text so they diff and open anywhere without a network.
public enum Report {
    public struct Series {
        public var label: String
        public var color: String
        public var values: [Double]
        public init(label: String, color: String, values: [Double]) {
            self.label = label
            self.color = color
            self.values = values
        }
    }

    public struct PointGroup {
        public var label: String
        public var color: String
        public var filled: Bool
        public var points: [(Double, Double)]
        public init(label: String, color: String, filled: Bool, points: [(Double, Double)]) {
            self.label = label
            self.color = color
            self.filled = filled
            self.points = points
        }
    }

    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    /// Numbers in SVG and HTML with fixed precision, so the files are stable across runs.
    public static func format(_ x: Double, _ digits: Int = 4) -> String {
        x.isFinite ? String(format: "%.\(digits)g", x) : (x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf"))
    }

    public static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A scatter plot of 2-D points in groups (the embedding plot).
    public static func scatterSVG(title: String, groups: [PointGroup], width: Int = 520, height: Int = 420) -> String {
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
    public static func curveSVG(title: String, series: [Series], width: Int = 520, height: Int = 300) -> String {
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
    public static func metricsTable(_ eval: JSONValue, models: [String]) -> String {
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

    public static func metricLabel(_ key: String) -> String {
        [
            "fid": "FID ↓ gen. vs truth", "is": "IS", "cosine": "cosine", "psnr": "PSNR (dB)", "ssim": "SSIM",
            "accuracy": "class accuracy",
        ][key] ?? key
    }

    /// The whole page. `sections` are (heading, HTML) pairs placed in order.
    public static func html(title: String, facts: [(String, String)], sections: [(String, String)]) -> String {
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

    public static func pngImage(_ bytes: [UInt8], alt: String, scale: Int = 3, width: Int) -> String {
        "<img alt=\"\(escape(alt))\" width=\"\(width * scale)\" src=\"data:image/png;base64,\(Data(bytes).base64EncodedString())\">"
    }
}
