import Foundation
import LetheFiles
import LetheRuns
import LetheSpec

/// A sweep's results folder, `<output>/sweeps/<sweep-hash>/`: `members.json` (the members with their
/// settings, hashes and run directories), `table.md` and `table.csv` (one row per member: the varied
/// settings, then each metric with its 95% interval where the run has one) and, when the sweep varies
/// `unlearn.alpha`, `pareto.svg` (retain-side metric against forget-side metric, one point per alpha,
/// seeds aggregated). Everything is rebuilt from finished runs, so collecting again is always safe.
public struct SweepResults {
    public struct Column: Equatable, Sendable {
        public var split: String
        public var metric: String
        public var key: String { split == "hole" ? "hole_psnr" : "\(split)_\(metric)" }
        public var title: String {
            split == "hole" ? "hole PSNR" : "\(split == "retain" ? "D_R" : "D_F") \(ResultTable.label(metric))"
        }
    }

    public struct Row: Sendable {
        public var index: Int
        public var settings: [(path: String, value: JSONValue)]
        public var configHash: String
        public var state: String
        public var cells: [String: ResultTable.Cell]
        public var eval: JSONValue?

        /// The member's value of a varied setting, as the tables show it ("" when it has none).
        public func setting(_ path: String) -> String {
            settings.first { $0.path == path }.map { SweepPlan.text($0.value) } ?? ""
        }
    }

    public var varied: [String]
    public var columns: [Column]
    public var rows: [Row]

    /// Reads every member's eval.json (members without a finished run get an empty row).
    public init(_ record: SweepRecord) {
        varied = record.varied
        var columns: [Column] = []
        var rows: [Row] = []
        for m in record.members {
            let finished = RunDirectory.finished(m.runDirectory)
            let eval = finished ? (try? RunStore.json(m.runDirectory, "eval.json")) ?? nil : nil
            var cells: [String: ResultTable.Cell] = [:]
            let wanted =
                m.kind == "pretrain"
                ? [Column(split: "hole", metric: "psnr")]
                : ["retain", "forget"].flatMap { s in m.metrics.map { Column(split: s, metric: $0) } }
            for column in wanted {
                guard let eval, let cell = Self.cell(eval, column) else { continue }
                cells[column.key] = cell
                if !columns.contains(column) { columns.append(column) }
            }
            rows.append(
                Row(
                    index: m.index, settings: m.settings, configHash: m.configHash,
                    state: m.state ?? SweepRecord.state(of: m.runDirectory), cells: cells, eval: eval))
        }
        self.columns = columns
        self.rows = rows
    }

    static func cell(_ eval: JSONValue, _ column: Column) -> ResultTable.Cell? {
        if column.split == "hole" {
            let m = eval["per_mask"]?.arrayValue?.first?["psnr_hidden_region"]?["model"]
            guard let v = m?["value"]?.doubleValue else { return nil }
            let ci = m?["ci95"]?.arrayValue?.compactMap(\.doubleValue)
            return ResultTable.Cell(value: v, lo: ci?.first, hi: ci?.last, seeds: 1)
        }
        return ResultTable.aggregate([eval], model: "unlearned", mask: nil, split: column.split, metric: column.metric)
    }

    static func number(_ x: Double) -> String {
        let a = abs(x)
        return a != 0 && (a < 0.01 || a >= 10_000) ? String(format: "%.3g", x) : String(format: "%.4g", x)
    }

    /// `table.md`: a Markdown table, then a line on what the intervals are.
    public var markdown: String {
        let headers = ["#"] + varied + columns.map(\.title) + ["run", "state"]
        var lines = [
            "| " + headers.joined(separator: " | ") + " |",
            "|" + headers.map { _ in "---" }.joined(separator: "|") + "|",
        ]
        for row in rows {
            let settings = varied.map(row.setting)
            let cells = columns.map { ResultTable.text(row.cells[$0.key], format: Self.number) }
            lines.append(
                "| "
                    + ([String(row.index)] + settings + cells + [String(row.configHash.prefix(12)), row.state])
                    .map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
        }
        lines.append("")
        lines.append(
            "Cells: value [95% bootstrap interval over test images] of the unlearned model; KID: ± its std over subsets."
        )
        return lines.joined(separator: "\n") + "\n"
    }

    /// `table.csv`: one line per member; each metric as value, lo, hi.
    public var csv: String {
        let headers =
            ["index"] + varied + columns.flatMap { [$0.key, $0.key + "_lo", $0.key + "_hi"] } + [
                "config_hash", "state",
            ]
        var lines = [headers.map(Self.csvField).joined(separator: ",")]
        for row in rows {
            var fields = [String(row.index)]
            fields += varied.map(row.setting)
            for c in columns {
                let cell = row.cells[c.key]
                fields += [
                    cell.map { "\($0.value)" } ?? "", cell?.lo.map { "\($0)" } ?? "", cell?.hi.map { "\($0)" } ?? "",
                ]
            }
            fields += [row.configHash, row.state]
            lines.append(fields.map(Self.csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `report.html`: the sweep's facts, the table and the Pareto plot in one self-contained page.
    func html(_ record: SweepRecord, pareto: String?) -> String {
        let headers = ["#"] + varied + columns.map(\.title) + ["run", "state"]
        var table = "<table>\n<tr>" + headers.map { "<th>\(Report.escape($0))</th>" }.joined() + "</tr>\n"
        for row in rows {
            let settings = varied.map(row.setting)
            let cells = columns.map { ResultTable.text(row.cells[$0.key], format: Self.number) }
            let fields = [String(row.index)] + settings + cells + [String(row.configHash.prefix(12)), row.state]
            table += "<tr>" + fields.map { "<td>\(Report.escape($0))</td>" }.joined() + "</tr>\n"
        }
        table += "</table>\n<p>Cells: value [95% bootstrap interval over test images] of the unlearned model.</p>"
        var sections = [("Members", table)]
        if let pareto { sections.append(("The alpha trade-off", pareto)) }
        let finished = rows.filter { $0.state == "finished" }.count
        return Report.html(
            title: "Sweep \(record.name)",
            facts: [
                ("sweep", record.sweep), ("sweep hash", record.hash),
                ("members", "\(rows.count) (\(finished) finished)"),
                ("varied", varied.joined(separator: ", ")), ("tool", "lethe " + LetheVersion.current),
            ], sections: sections)
    }

    static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") || s.contains("\n")
            ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// Writes members.json, table.md, table.csv and (when alpha varies) pareto.svg into `dir`, each
    /// replaced atomically; returns the files written.
    @discardableResult
    public func write(_ record: SweepRecord, into dir: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var files: [(String, String)] = [
            ("members.json", JSONText.pretty(record.json) + "\n"), ("table.md", markdown), ("table.csv", csv),
        ]
        let pareto = Pareto(self).map { $0.svg(title: record.name) }
        if let pareto { files.append(("pareto.svg", pareto)) }
        files.append(("report.html", html(record, pareto: pareto)))
        for (name, text) in files {
            do { try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/" + name), options: .atomic) } catch {
                throw RunError("\(dir)/\(name): cannot write: \(FileSystem.reason(error))")
            }
        }
        return files.map { dir + "/" + $0.0 }
    }
}

/// The alpha trade-off of a sweep: for each alpha (seeds aggregated: mean and the interval `lethe table`
/// uses), the retain-side metric against the forget-side one, one line per group of the other varied
/// settings, the original model as a reference point, and the Pareto-optimal alphas filled.
public struct Pareto {
    public struct Point: Sendable {
        public var alpha: Double
        public var retain: ResultTable.Cell
        public var forget: ResultTable.Cell
        public var optimal = false
    }

    public var metric: String
    public var series: [(label: String, points: [Point])]
    public var original: (retain: ResultTable.Cell, forget: ResultTable.Cell)?

    /// Lower is better on the retain side for these; higher is better for the others.
    static let lowerIsBetter: Set<String> = ["fid", "kid"]

    /// nil when the sweep does not vary `unlearn.alpha` or no member has both splits of a metric.
    public init?(_ results: SweepResults) {
        guard results.varied.contains("unlearn.alpha") else { return nil }
        let available = Set(results.columns.map(\.key))
        let order = ["fid", "psnr", "kid", "ssim", "is", "cosine", "accuracy"]
        guard
            let metric = order.first(where: { available.contains("retain_\($0)") && available.contains("forget_\($0)") }
            )
        else { return nil }
        self.metric = metric
        let others = results.varied.filter { $0 != "unlearn.alpha" && $0 != "seed" }
        var groups: [(label: String, rows: [SweepResults.Row])] = []
        for row in results.rows where row.eval != nil {
            let label = others.map { path in
                "\(path)=\(row.setting(path))"
            }.joined(separator: " ")
            if let i = groups.firstIndex(where: { $0.label == label }) {
                groups[i].rows.append(row)
            } else {
                groups.append((label, [row]))
            }
        }
        var series: [(label: String, points: [Point])] = []
        for group in groups {
            var byAlpha: [(Double, [JSONValue])] = []
            for row in group.rows {
                guard let alpha = row.settings.first(where: { $0.path == "unlearn.alpha" })?.value.doubleValue,
                    let eval = row.eval
                else { continue }
                if let i = byAlpha.firstIndex(where: { $0.0 == alpha }) {
                    byAlpha[i].1.append(eval)
                } else {
                    byAlpha.append((alpha, [eval]))
                }
            }
            var points: [Point] = []
            for (alpha, evals) in byAlpha.sorted(by: { $0.0 < $1.0 }) {
                guard
                    let r = ResultTable.aggregate(
                        evals, model: "unlearned", mask: nil, split: "retain", metric: metric),
                    let f = ResultTable.aggregate(evals, model: "unlearned", mask: nil, split: "forget", metric: metric)
                else { continue }
                points.append(Point(alpha: alpha, retain: r, forget: f))
            }
            let method = group.rows.compactMap { $0.eval?["method"]?.stringValue }.first ?? "unlearned"
            if !points.isEmpty { series.append((group.label.isEmpty ? method : group.label, points)) }
        }
        guard !series.isEmpty else { return nil }
        // Pareto-optimal: no other point of the series is at least as good on both sides and better on one.
        let lower = Self.lowerIsBetter.contains(metric)
        func retainBetter(_ a: Double, _ b: Double) -> Bool { lower ? a < b : a > b }
        func forgetBetter(_ a: Double, _ b: Double) -> Bool { lower ? a > b : a < b }
        for s in series.indices {
            let pts = series[s].points
            for i in pts.indices {
                let p = pts[i]
                series[s].points[i].optimal = !pts.indices.contains { j in
                    j != i
                        && !retainBetter(p.retain.value, pts[j].retain.value)
                        && !forgetBetter(p.forget.value, pts[j].forget.value)
                        && (retainBetter(pts[j].retain.value, p.retain.value)
                            || forgetBetter(pts[j].forget.value, p.forget.value))
                }
            }
        }
        self.series = series
        let evals = results.rows.compactMap(\.eval)
        if let r = ResultTable.aggregate(
            evals.prefix(1).map { $0 }, model: "original", mask: nil, split: "retain", metric: metric),
            let f = ResultTable.aggregate(
                evals.prefix(1).map { $0 }, model: "original", mask: nil, split: "forget", metric: metric)
        {
            original = (r, f)
        }
    }

    public func svg(title: String, width: Int = 560, height: Int = 420) -> String {
        let label = ResultTable.label(metric)
        var xs: [Double] = []
        var ys: [Double] = []
        for p in series.flatMap(\.points) {
            xs += [p.forget.value, p.forget.lo ?? p.forget.value, p.forget.hi ?? p.forget.value]
            ys += [p.retain.value, p.retain.lo ?? p.retain.value, p.retain.hi ?? p.retain.value]
        }
        // The original is drawn when it does not squeeze the points into a corner (its D_F is usually far
        // from every unlearned model's); otherwise its values are written beside the plot.
        let spread = { (v: [Double]) in (v.max() ?? 0) - (v.min() ?? 0) }
        var originalShown = false
        if let o = original {
            let fx = series.flatMap(\.points).map(\.forget.value)
            let ry = series.flatMap(\.points).map(\.retain.value)
            let wideX = spread(fx + [o.forget.value]) > 3 * max(spread(fx), 1e-9)
            let wideY = spread(ry + [o.retain.value]) > 3 * max(spread(ry), 1e-9)
            if !wideX && !wideY {
                xs += [o.forget.value]
                ys += [o.retain.value]
                originalShown = true
            }
        }
        func padded(_ v: [Double]) -> (Double, Double) {
            let (lo, hi) = (v.min() ?? 0, v.max() ?? 1)
            let pad = hi > lo ? (hi - lo) * 0.06 : max(abs(lo) * 0.05, 1e-6)
            return (lo - pad, hi + pad)
        }
        let (x0, x1) = padded(xs)
        let (y0, y1) = padded(ys)
        let (left, top, right, bottom) = (70.0, 40.0, 170.0, 50.0)
        let pw = Double(width) - left - right
        let ph = Double(height) - top - bottom
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + ph - (y - y0) / (y1 - y0) * ph }
        func f(_ v: Double) -> String { Report.format(v, 6) }
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out +=
            "<text x=\"\(Int(left))\" y=\"20\" font-size=\"14\">\(Report.escape(title)): the alpha trade-off (\(label))</text>\n"
        out +=
            "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#999\"/>\n"
        for (v, x) in [(x0, left), (x1, left + pw)] {
            out +=
                "<text x=\"\(f(x))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\">\(Report.format(v, 4))</text>\n"
        }
        for (v, y) in [(y0, top + ph), (y1, top)] {
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(Report.format(v, 4))</text>\n"
        }
        let lower = Self.lowerIsBetter.contains(metric)
        out +=
            "<text x=\"\(f(left + pw / 2))\" y=\"\(height - 12)\" text-anchor=\"middle\">D_F \(label) of the unlearned model (\(lower ? "higher" : "lower"): more forgotten)</text>\n"
        out +=
            "<text transform=\"translate(16 \(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">D_R \(label) (\(lower ? "lower" : "higher"): better kept)</text>\n"
        for (k, s) in series.enumerated() {
            let color = Report.palette[k % Report.palette.count]
            let line = s.points.map { "\(f(px($0.forget.value))),\(f(py($0.retain.value)))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.2\" points=\"\(line)\"/>\n"
            for (i, p) in s.points.enumerated() {
                let (cx, cy) = (px(p.forget.value), py(p.retain.value))
                if let lo = p.forget.lo, let hi = p.forget.hi {
                    out +=
                        "<line x1=\"\(f(px(lo)))\" y1=\"\(f(cy))\" x2=\"\(f(px(hi)))\" y2=\"\(f(cy))\" stroke=\"\(color)\"/>\n"
                }
                if let lo = p.retain.lo, let hi = p.retain.hi {
                    out +=
                        "<line x1=\"\(f(cx))\" y1=\"\(f(py(lo)))\" x2=\"\(f(cx))\" y2=\"\(f(py(hi)))\" stroke=\"\(color)\"/>\n"
                }
                out +=
                    "<circle cx=\"\(f(cx))\" cy=\"\(f(cy))\" r=\"4\" fill=\"\(p.optimal ? color : "white")\" stroke=\"\(color)\" stroke-width=\"1.5\"/>\n"
                // Labels alternate above-right and below-left so neighbouring alphas stay readable.
                let (dx, dy, anchor) = i % 2 == 0 ? (6.0, -7.0, "start") : (-6.0, 15.0, "end")
                out +=
                    "<text x=\"\(f(cx + dx))\" y=\"\(f(cy + dy))\" text-anchor=\"\(anchor)\">α=\(Report.format(p.alpha, 3))</text>\n"
            }
            let ly = Int(top) + 18 * k + 8
            out +=
                "<line x1=\"\(width - Int(right) + 10)\" y1=\"\(ly)\" x2=\"\(width - Int(right) + 26)\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            out += "<text x=\"\(width - Int(right) + 30)\" y=\"\(ly + 4)\">\(Report.escape(s.label))</text>\n"
        }
        if let o = original, !originalShown {
            let ly = Int(top) + 18 * series.count + 44
            out +=
                "<text x=\"\(width - Int(right) + 10)\" y=\"\(ly)\" font-size=\"11\">original (off the plot):</text>\n"
            out +=
                "<text x=\"\(width - Int(right) + 10)\" y=\"\(ly + 14)\" font-size=\"11\">D_R \(Report.format(o.retain.value, 4)), D_F \(Report.format(o.forget.value, 4))</text>\n"
        }
        if let o = original, originalShown {
            let (cx, cy) = (px(o.forget.value), py(o.retain.value))
            out +=
                "<path d=\"M \(f(cx)) \(f(cy - 6)) L \(f(cx + 6)) \(f(cy)) L \(f(cx)) \(f(cy + 6)) L \(f(cx - 6)) \(f(cy)) Z\" fill=\"black\"/>\n"
            out += "<text x=\"\(f(cx + 8))\" y=\"\(f(cy + 14))\">original</text>\n"
        }
        let ly = Int(top) + 18 * series.count + 12
        out += "<text x=\"\(width - Int(right) + 10)\" y=\"\(ly)\" font-size=\"11\">filled: Pareto-optimal</text>\n"
        out += "<text x=\"\(width - Int(right) + 10)\" y=\"\(ly + 14)\" font-size=\"11\">bars: 95% intervals</text>\n"
        return out + "</svg>\n"
    }
}
