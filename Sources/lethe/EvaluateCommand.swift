import ArgumentParser
import Foundation
import LetheJSON
import LetheRuns
import LetheUnlearn
import LetheSpec

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a run's evaluation, running the spec first if needed.",
        discussion: """
            TARGET is a spec, a run directory, or a config hash (or a unique prefix of one) under --runs. \
            A spec is planned and executed like `lethe run` (a `kind: evaluate` spec measures one checkpoint \
            without unlearning; see configs/mae-evaluate.yaml); then the metrics of its run directory are \
            printed: FID, IS and cosine in the feature classifier's space, PSNR of the hidden region, SSIM \
            and class accuracy, on held-out retain (D_R) and forget (D_F) images.
            """
    )

    @Argument(help: "Spec file, run directory or config hash.")
    var target: String

    @OptionGroup var options: SpecOptions

    @Option(help: "Where run directories live (for hashes).")
    var runs = "runs"

    @Option(help: "Output format: text, md or csv.")
    var format: TableFormat = .text

    @Flag(help: "Print eval.json as it is.")
    var json = false

    @Option(parsing: .unconditional, help: "Threads for the numeric core, when a spec runs.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws { try OptionChecks.threads(threads) }

    func run() throws {
        let dir: String
        if target.hasSuffix(".yaml") || target.hasSuffix(".yml")
            || FileManager.default.isReadableFile(atPath: target) && !isDirectory(target)
        {
            dir = try execute(try options.plan(target), threads: threads)
        } else {
            do { dir = try RunStore(root: runs).locate(target) } catch { throw failure("\(error)") }
        }
        // What is printed must be what the run wrote: the manifest is checked first.
        do { try RunRecord(dir).requireIntact() } catch { throw failure("\(error)", Exit.no) }
        let eval: JSONValue
        do {
            guard let e = try RunStore.json(dir, "eval.json") else { throw failure("\(dir) has no eval.json") }
            eval = e
        } catch let code as ExitCode { throw code } catch { throw failure("\(error)") }
        if json {
            print(JSONText.pretty(eval))
            return
        }
        print("run \(dir)")
        print(EvaluationTable.models(eval).render(format))
        if FileManager.default.fileExists(atPath: dir + "/report.html") { print("report: \(dir)/report.html") }
    }

    func isDirectory(_ path: String) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &d) && d.boolValue
    }
}

/// eval.json as tables.
enum EvaluationTable {
    static let splitLabels = ["retain": "D_R", "forget": "D_F", "all": "all"]

    /// One row per model (original, unlearned, mean fill), a column per split and metric.
    static func models(_ eval: JSONValue) -> TextTable {
        let splits = ["retain", "forget", "all"].filter { eval["images"]?[$0] != nil }
        let models = ["original", "unlearned", "ground_truth", "mean_fill", "noise_fill"].filter { eval[$0] != nil }
        var metrics: [String] = []
        for m in models {
            for s in splits {
                for k in eval[m]?[s]?.objectValue?.keys ?? [] where !metrics.contains(k) { metrics.append(k) }
            }
        }
        let headers = ["model"] + splits.flatMap { s in metrics.map { "\(splitLabels[s] ?? s) \($0)" } }
        let rows = models.map { m in [m] + splits.flatMap { s in metrics.map { cell(eval[m]?[s]?[$0]?.doubleValue) } } }
        return TextTable(headers: headers, rows: rows)
    }
}
