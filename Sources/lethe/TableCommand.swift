import ArgumentParser
import Foundation
import LetheJSON
import LetheRuns
import LetheUnlearn
import LetheSpec

struct Table: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run (or collect) a set of unlearning specs and print the paper's table.",
        discussion: """
            One table per model family: rows Original, MAX LOSS, NOISY LABEL, RETAIN LABEL, RANDOM ENCODER, \
            Ours, Ours (proxy D_R) (whichever the specs cover); columns the chosen metrics on D_R (retain) \
            and D_F (forget). The Original row is the first run's original model. Specs whose run is \
            finished are reused; with --no-run a missing run is an error instead.
            Example: lethe table configs/mae-*.yaml --format md
            """
    )

    @Argument(help: "Unlearning specs (kind: unlearn). Other kinds are skipped.")
    var specs: [String]

    @OptionGroup var options: SpecOptions

    @Option(help: "Output format: text, md or csv.")
    var format: TableFormat = .text

    @Option(help: "Comma-separated metrics (fid, is, cosine, psnr, ssim, accuracy).")
    var metrics = "fid,is,cosine"

    @Flag(help: "Only collect finished runs; do not execute anything.")
    var noRun = false

    @Option(parsing: .unconditional, help: "Threads for the numeric core, when specs run.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    static let rowOrder = [
        "Original", "MAX LOSS", "NOISY LABEL", "RETAIN LABEL", "RANDOM ENCODER", "Ours", "Ours (proxy D_R)",
    ]

    func run() throws {
        let wanted = metrics.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let known = ["fid", "is", "cosine", "psnr", "ssim", "accuracy"]
        if let bad = wanted.first(where: { !known.contains($0) }) {
            throw ValidationError("unknown metric '\(bad)'; choose from \(known.joined(separator: ", "))")
        }
        var families: [(architecture: String, rows: [(name: String, eval: JSONValue, original: Bool)])] = []
        for path in specs {
            // Other kinds (a glob like configs/mae-*.yaml also picks the pretrain spec) are skipped
            // before planning, so --set overrides meant for the unlearning specs never touch them.
            if let kind = Self.kind(of: path), kind != "unlearn" {
                printError("\(path): kind \(kind), skipped")
                continue
            }
            let plan = try options.plan(path)
            let dir: String
            if noRun {
                guard RunDirectory.finished(plan.runDirectory) else {
                    throw failure("\(path): no finished run (\(plan.runDirectory)); run it, or leave out --no-run")
                }
                dir = plan.runDirectory
            } else {
                dir = try execute(plan, threads: threads)
            }
            do { try RunRecord(dir).requireIntact() } catch { throw failure("\(error)", Exit.no) }
            guard let eval = try RunStore.json(dir, "eval.json") else { throw failure("\(dir) has no eval.json") }
            let arch = plan.spec.model.architecture.rawValue
            if !families.contains(where: { $0.architecture == arch }) {
                families.append((arch, [("Original", eval, true)]))
            }
            let i = families.firstIndex { $0.architecture == arch }!
            families[i].rows.append((eval["method"]?.stringValue ?? "?", eval, false))
        }
        for (k, family) in families.enumerated() {
            let rows = family.rows.sorted {
                (Self.rowOrder.firstIndex(of: $0.name) ?? 99) < (Self.rowOrder.firstIndex(of: $1.name) ?? 99)
            }
            let table = TextTable(
                headers: ["\(family.architecture)"]
                    + ["retain", "forget"].flatMap { s in
                        wanted.map { "\(EvaluationTable.splitLabels[s]!) \(Self.label($0))" }
                    },
                rows: rows.map { row in
                    let model = row.original ? "original" : "unlearned"
                    return [row.name]
                        + ["retain", "forget"].flatMap { s in wanted.map { cell(row.eval[model]?[s]?[$0]?.doubleValue) }
                        }
                })
            if k > 0 { print("") }
            print(table.render(format))
        }
    }

    /// The `kind` a spec file declares, without planning it (nil when it cannot be read; planning
    /// then reports why).
    static func kind(of path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path),
            let json = try? YAMLLoader.loadDocument([UInt8](data), file: path).toJSON().0
        else { return nil }
        return json["kind"]?.stringValue
    }

    static func label(_ metric: String) -> String {
        ["fid": "FID", "is": "IS", "cosine": "cosine", "psnr": "PSNR", "ssim": "SSIM", "accuracy": "acc"][metric]
            ?? metric
    }
}
