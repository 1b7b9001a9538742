import Foundation
import LetheJSON
import LetheRuns
import LetheSpec

/// What a finished unlearn or evaluate run puts in its report: the metrics table, the training
/// curve, the embedding plot (PCA of the feature classifier's features of the completed images) and
/// the sample grid.
struct RunReport {
    var plan: Plan
    var eval: JSONValue
    var curve: [String]
    var models: [(name: String, result: ModelEvaluator.Result)]
    var curveKeys: [String]

    /// A prose fragment of the report (`Sources/LetheUnlearn/ReportText/`), its `{{name}}` placeholders
    /// filled with HTML-escaped values.
    static func text(_ name: String, _ values: [String: String] = [:]) -> String {
        guard var text = EmbeddedReportText.files.first(where: { $0.name == name })?.text else {
            preconditionFailure("no report text \(name); run `make schemas`")
        }
        for (key, value) in values { text = text.replacingOccurrences(of: "{{\(key)}}", with: Report.escape(value)) }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func write(into dir: RunDirectory) throws {
        var sections: [(String, String)] = []
        sections.append(
            (
                "Metrics",
                Report.metricsTable(eval, models: models.map(\.name) + ModelEvaluator.references)
                    + Self.text("metrics.html")
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
            /// One model's features of one split's completions.
            struct FeatureGroup {
                var label: String
                var color: String
                var filled: Bool
                var features: [Float]
            }
            var groups: [FeatureGroup] = []
            for (m, model) in withFeatures.enumerated() {
                for (s, split) in ["retain", "forget", "all"].enumerated() {
                    if let f = model.result.features[split] {
                        groups.append(
                            FeatureGroup(
                                label: "\(model.name) \(split)", color: Report.palette[s], filled: m == 0, features: f))
                    }
                }
            }
            let points: [(Double, Double)]
            switch plan.spec.evaluate.embeddingPlot {
            case .pca: points = Metrics.pca2(groups.flatMap(\.features), d: d)
            }
            var offset = 0
            let svg = Report.scatterSVG(
                title: "completed images, feature-space PCA",
                groups: groups.map { g in
                    let n = g.features.count / d
                    defer { offset += n }
                    return Report.PointGroup(
                        label: g.label, color: g.color, filled: g.filled, points: Array(points[offset..<(offset + n)]))
                })
            try dir.write("embedding.svg", text: svg)
            sections.append(
                (
                    "Embeddings",
                    svg
                        + Self.text(
                            "embeddings.html",
                            [
                                "filled": withFeatures[0].name,
                                "hollow": withFeatures.dropFirst().map(\.name).joined(separator: ", "),
                            ])
                ))
        }
        if let png = FileManager.default.contents(atPath: dir.path("samples.png")) {
            let size = plan.spec.data.imageSize
            let k = max(1, plan.spec.evaluate.gridSamples / 2)
            sections.append(
                (
                    "Samples",
                    Report.pngImage([UInt8](png), alt: "sample grid", width: 2 * k * (size + 2))
                        + Self.text("samples.html", ["models": models.map(\.name).joined(separator: ", ")])
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
