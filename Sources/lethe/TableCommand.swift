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
            and D_F (forget), each `value [95% interval]`; below them the reference rows (ground truth, \
            mean fill, noise fill) that bound every metric. The Original and reference rows are the first \
            spec's. With --seeds every spec runs once per seed and a cell is the mean over seeds, its \
            interval joining the t interval over seeds and the test-set bootstrap; with one seed the interval is the run's bootstrap interval over test images. A cell \
            whose interval overlaps the Original row's is marked ≈. Specs whose run is finished are \
            reused; with --no-run a missing run is an error instead.
            Example: lethe table configs/mae-*.yaml --seeds 0,1,2 --format md
            """
    )

    @Argument(help: "Unlearning specs (kind: unlearn). Other kinds are skipped.")
    var specs: [String]

    @OptionGroup var options: SpecOptions

    @Option(help: "Output format: text, md or csv.")
    var format: TableFormat = .text

    @Option(help: "Comma-separated metrics (fid, kid, is, cosine, psnr, ssim, accuracy).")
    var metrics = "fid,is,cosine"

    @Option(help: "Comma-separated seeds: each spec runs (or is reused) once per seed and its cells aggregate them.")
    var seeds: String?

    @Option(
        help:
            "The evaluation mask whose metrics fill the table (a name from eval.json's evaluation_masks, e.g. outpaint_0.75); default the headline (first) mask."
    )
    var mask: String?

    @Flag(help: "Only collect finished runs; do not execute anything.")
    var noRun = false

    @Option(parsing: .unconditional, help: "Threads for the numeric core, when specs run.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    static let rowOrder = [
        "Original", "MAX LOSS", "NOISY LABEL", "RETAIN LABEL", "RANDOM ENCODER", "Ours", "Ours (proxy D_R)",
    ]

    func run() throws {
        let wanted = metrics.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let known = ["fid", "kid", "is", "cosine", "psnr", "ssim", "accuracy"]
        if let bad = wanted.first(where: { !known.contains($0) }) {
            throw ValidationError("unknown metric '\(bad)'; choose from \(known.joined(separator: ", "))")
        }
        let seedList: [UInt64?]
        if let seeds {
            let parsed = seeds.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
            guard !parsed.isEmpty, parsed.allSatisfy({ $0 != nil }) else {
                throw ValidationError(
                    "--seeds takes comma-separated non-negative integers, e.g. 0,1,2; found '\(seeds)'")
            }
            seedList = parsed
        } else {
            seedList = [nil]
        }
        var families: [(architecture: String, methods: [(name: String, evals: [JSONValue])])] = []
        for path in specs {
            // Other kinds (a glob like configs/mae-*.yaml also picks the pretrain spec) are skipped
            // before planning, so --set overrides meant for the unlearning specs never touch them.
            if let kind = Self.kind(of: path), kind != "unlearn" {
                printError("\(path): kind \(kind), skipped")
                continue
            }
            var evals: [JSONValue] = []
            var name = "?"
            var arch = "?"
            for seed in seedList {
                let plan = try options.plan(path, extra: seed.map { ["seed=\($0)"] } ?? [])
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
                if let mask, eval["per_mask"]?.arrayValue?.contains(where: { $0["name"]?.stringValue == mask }) != true
                {
                    let names = eval["per_mask"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
                    throw failure(
                        "\(dir): no evaluation mask '\(mask)' (the run has \(names.isEmpty ? "none" : names.joined(separator: ", ")))"
                    )
                }
                evals.append(eval)
                name = eval["method"]?.stringValue ?? "?"
                arch = plan.spec.model.architecture.rawValue
            }
            if let i = families.firstIndex(where: { $0.architecture == arch }) {
                families[i].methods.append((name, evals))
            } else {
                families.append((arch, [(name, evals)]))
            }
        }
        for (k, family) in families.enumerated() {
            let methods = family.methods.sorted {
                (Self.rowOrder.firstIndex(of: $0.name) ?? 99) < (Self.rowOrder.firstIndex(of: $1.name) ?? 99)
            }
            let columns = ["retain", "forget"].flatMap { s in wanted.map { (split: s, metric: $0) } }
            let table = ResultTable(methods: methods, columns: columns, mask: mask)
            if format == .csv {
                print(Self.csv(table, architecture: family.architecture))
                continue
            }
            let text = TextTable(
                headers: ["\(family.architecture)"]
                    + columns.map { "\(EvaluationTable.splitLabels[$0.split]!) \(ResultTable.label($0.metric))" },
                rows: table.rows.map { row in
                    [row.name]
                        + columns.map { ResultTable.text(row.cells["\($0.split).\($0.metric)"], format: { cell($0) }) }
                })
            if k > 0 { print("") }
            print(text.render(format))
            let counts = Set(table.rows.flatMap { $0.cells.values.map(\.seeds) }).sorted()
            print("")
            print(
                "\(counts == [1] ? "1 seed: [95% bootstrap interval over test images]" : "seeds per cell \(counts.map(String.init).joined(separator: "/")): [mean over seeds +- sqrt(t half width over seeds^2 + mean bootstrap half width^2)]"); KID: +- its std over subsets; ≈: the interval overlaps the Original row's, so that difference is not claimed."
            )
        }
    }

    /// One line per cell: row, split, metric, value, interval, seeds, whether it overlaps the Original row.
    static func csv(_ table: ResultTable, architecture: String) -> String {
        var lines = ["family,row,split,metric,value,lo,hi,seeds,overlaps_original"]
        for row in table.rows {
            for (split, metric) in table.columns {
                guard let c = row.cells["\(split).\(metric)"] else { continue }
                let fields = [
                    architecture, row.name, split, metric, "\(c.value)", c.lo.map { "\($0)" } ?? "",
                    c.hi.map { "\($0)" } ?? "", "\(c.seeds)", c.overlapsOriginal.map { "\($0)" } ?? "",
                ]
                lines.append(
                    fields.map {
                        $0.contains(",") || $0.contains("\"")
                            ? "\"\($0.replacingOccurrences(of: "\"", with: "\"\""))\"" : $0
                    }.joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The `kind` a spec file declares, without planning it (nil when it cannot be read; planning
    /// then reports why).
    static func kind(of path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path),
            let json = try? YAMLLoader.loadDocument([UInt8](data), file: path).toJSON().0
        else { return nil }
        return json["kind"]?.stringValue
    }
}
