import ArgumentParser
import Foundation
import LetheJSON
import LetheRuns

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two runs: spec, metrics, checkpoint tensors, sample images.",
        discussion: """
            A and B are run directories or config hashes (or unique prefixes) under --runs. Shows only what \
            changed: the resolved spec by path, metric deltas with the better side for the unlearned model \
            (D_R: closer to a good model; D_F: further from the truth), per-layer checkpoint change against \
            each other and against the original model, and which sample images changed (a side-by-side PNG \
            A | B | amplified difference). Exit code: 0 when the runs' files are identical (timings aside), \
            1 when they differ, 2 on an error (missing run, tampered files).
            """
    )

    @Argument(help: "Run directory or config hash.") var a: String
    @Argument(help: "Run directory or config hash.") var b: String

    @Option(help: "Where run directories live (for hashes).")
    var runs = "runs"

    @Flag(help: "Markdown, to paste into a pull request.")
    var md = false

    @Flag(help: "JSON, for tools.")
    var json = false

    @Option(help: "Where the side-by-side PNG goes (default: <runs>/diffs/<a>-<b>.png).")
    var png: String?

    @Option(parsing: .unconditional, help: "Layers listed at most (largest change first).")
    var layers = 12

    func run() throws {
        let diff: RunDiff
        do {
            let store = RunStore(root: runs)
            diff = try RunDiff(try store.locate(a), try store.locate(b))
        } catch {
            throw failure("\(error)", error is RunRecord.Problem ? Exit.no : Exit.error)
        }
        var pngPath: String?
        if diff.imageCells.contains(where: { $0.maxAbs > 0 }) {
            let path = png ?? "\(runs)/diffs/\(diff.a.hash.prefix(12))-\(diff.b.hash.prefix(12)).png"
            do {
                try diff.writeSideBySide(to: path)
                pngPath = path
            } catch { printError("warning: no side-by-side image: \(error)") }
        }
        if json {
            print(JSONText.pretty(DiffRender.json(diff, png: pngPath)))
        } else {
            print(DiffRender.text(diff, markdown: md, png: pngPath, layerLimit: layers))
        }
        if diff.differ { throw Exit.no }
    }

    func validate() throws { try OptionChecks.atLeast(layers, 0, name: "--layers") }
}

enum DiffRender {
    static func value(_ v: JSONValue?) -> String { v.map { JSONText.scalar($0) } ?? "(absent)" }

    static func text(_ d: RunDiff, markdown: Bool, png: String?, layerLimit: Int) -> String {
        var out: [String] = []
        let fmt: TableFormat = markdown ? .md : .text
        func heading(_ s: String) { out.append(markdown ? "\n### \(s)\n" : "\n== \(s)") }
        out.append(
            markdown
                ? "## lethe diff `\(d.a.hash.prefix(12))` → `\(d.b.hash.prefix(12))`"
                : "lethe diff A=\(d.a.path) B=\(d.b.path)")
        if !d.differ {
            out.append("identical: every file matches (timings aside)")
            return out.joined(separator: "\n")
        }
        heading("spec (\(d.spec.count) change\(d.spec.count == 1 ? "" : "s"))")
        out.append(
            d.spec.isEmpty
                ? "no change"
                : TextTable(
                    headers: ["path", "A", "B"], rows: d.spec.map { [$0.pointer, value($0.before), value($0.after)] }
                ).render(fmt))

        let changed = d.metrics.filter { $0.a != $0.b }
        heading("metrics (\(changed.count) changed)")
        out.append(
            changed.isEmpty
                ? "no change"
                : TextTable(
                    headers: ["metric", "A", "B", "B - A", "better"],
                    rows: changed.map {
                        [$0.name, cell($0.a), cell($0.b), cell($0.delta), $0.better ?? ""]
                    }
                ).render(fmt))

        let layers = d.layers.filter { ($0.norm ?? 1) > 0 }.sorted { ($0.norm ?? .infinity) > ($1.norm ?? .infinity) }
        heading("checkpoint (\(layers.count) of \(d.layers.count) layers changed)")
        if d.tensors.isEmpty {
            out.append("no checkpoint on side A")
        } else if layers.isEmpty {
            out.append("no change")
        } else {
            let original = d.originalRun != nil
            out.append(
                TextTable(
                    headers: ["layer", "|B - A|"] + (original ? ["|A - original|", "|B - original|"] : []),
                    rows: layers.prefix(layerLimit).map {
                        [$0.layer, cell($0.norm)] + (original ? [cell($0.fromOriginalA), cell($0.fromOriginalB)] : [])
                    }
                ).render(fmt))
            if layers.count > layerLimit { out.append("(\(layers.count - layerLimit) more; --layers N shows more)") }
            let maxAbs = d.tensors.compactMap(\.maxAbs).max() ?? 0
            out.append(
                "largest single-parameter change: \(cell(maxAbs))"
                    + (original ? "; original model: \(d.originalRun!)" : ""))
        }

        let images = d.imageCells.filter { $0.maxAbs > 0 }
        heading("images (\(images.count) of \(d.imageCells.count) grid cells changed)")
        if let note = d.imageNote { out.append(note) }
        if !images.isEmpty {
            let kind = (try? d.a.json("resolved.json"))?["kind"]?.stringValue ?? ""
            let names =
                kind == "pretrain"
                ? ["masked input", "ground truth", "completion"]
                : ["masked input", "ground truth", "original", kind == "unlearn" ? "unlearned" : "model"]
            let columns = (d.imageCells.map(\.column).max() ?? 0) + 1
            func place(_ c: RunDiff.ImageCell) -> String {
                kind == "pretrain"
                    ? "image \(c.column)"
                    : (c.column < columns / 2 ? "retain \(c.column)" : "forget \(c.column - columns / 2)")
            }
            out.append(
                TextTable(
                    headers: ["grid row", "image", "mean |Δ|", "max |Δ|"],
                    rows: images.sorted { $0.meanAbs > $1.meanAbs }.prefix(10).map {
                        [
                            $0.row < names.count ? names[$0.row] : String($0.row), place($0), cell($0.meanAbs),
                            cell($0.maxAbs),
                        ]
                    }
                ).render(fmt))
            if let png { out.append("side by side (A | B | 4x difference): \(png)") }
        }
        heading("files")
        out.append(
            (d.changedFiles.map { "changed: \($0)" } + d.onlyInA.map { "only in A: \($0)" }
                + d.onlyInB.map { "only in B: \($0)" }).joined(separator: "\n"))
        return out.joined(separator: "\n")
    }

    static func json(_ d: RunDiff, png: String?) -> JSONValue {
        func num(_ x: Double?) -> JSONValue { x.map { $0.isFinite ? .number($0) : .null } ?? .null }
        return .object(
            JSONObject([
                ("a", .string(d.a.path)), ("b", .string(d.b.path)), ("differ", .bool(d.differ)),
                (
                    "spec",
                    .array(
                        d.spec.map {
                            .object(
                                JSONObject([
                                    ("path", .string($0.pointer)), ("a", $0.before ?? .null), ("b", $0.after ?? .null),
                                ]))
                        })
                ),
                (
                    "metrics",
                    .array(
                        d.metrics.filter { $0.a != $0.b }.map {
                            .object(
                                JSONObject([
                                    ("metric", .string($0.name)), ("a", num($0.a)), ("b", num($0.b)),
                                    ("delta", num($0.delta)), ("better", $0.better.map(JSONValue.string) ?? .null),
                                ]))
                        })
                ),
                (
                    "layers",
                    .array(
                        d.layers.map {
                            .object(
                                JSONObject([
                                    ("layer", .string($0.layer)), ("change", num($0.norm)),
                                    ("a_from_original", num($0.fromOriginalA)),
                                    ("b_from_original", num($0.fromOriginalB)),
                                ]))
                        })
                ),
                (
                    "images",
                    .array(
                        d.imageCells.filter { $0.maxAbs > 0 }.map {
                            .object(
                                JSONObject([
                                    ("row", .integer($0.row)), ("column", .integer($0.column)),
                                    ("mean_abs", .number($0.meanAbs)), ("max_abs", .number($0.maxAbs)),
                                ]))
                        })
                ),
                ("side_by_side", png.map(JSONValue.string) ?? .null),
                (
                    "files",
                    .object(
                        JSONObject([
                            ("changed", .array(d.changedFiles.map(JSONValue.string))),
                            ("only_a", .array(d.onlyInA.map(JSONValue.string))),
                            ("only_b", .array(d.onlyInB.map(JSONValue.string))),
                        ]))
                ),
            ]))
    }
}
