import ArgumentParser
import Foundation
import LetheRuns
import LetheUnlearn

struct Reproduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-execute a run from its recorded spec and verify it against its manifest.",
        discussion: """
            The run is re-executed into a scratch folder from its resolved.json; the stages it depends on \
            (pretrain run, feature classifier) are reused from the same runs folder. Checkpoints and metrics \
            must be bitwise identical on the same machine, tool, BLAS kernel and thread count (and across \
            thread counts with numerics.mode: strict); otherwise they must agree within --tolerance \
            (relative). Report, plots and images follow the numbers and never decide. Exit code 0 when \
            reproduced, 1 when not, 2 on an error (unknown or tampered run).
            """
    )

    @Argument(help: "Run directory or config hash (or a unique prefix).")
    var target: String

    @Option(help: "Where run directories live (for hashes).")
    var runs = "runs"

    @Option(parsing: .unconditional, help: "Threads for the numeric core (default: the thread count the run recorded).")
    var threads: Int?

    @Option(
        parsing: .unconditional, help: "Largest relative difference accepted when bitwise identity is not promised.")
    var tolerance = 1e-4

    @Option(
        help:
            "Where to re-execute: a folder to create, or an existing folder to create a fresh scratch folder in (default: one under the system's temporary folder). Only the folder Lethe creates is ever removed."
    )
    var scratch: String?

    @Flag(help: "Keep the scratch folder (it is always kept when the run does not reproduce).")
    var keep = false

    func run() throws {
        let record: RunRecord
        let located: String
        do { located = try RunStore(root: runs).locate(target) } catch { throw failure("\(error)") }
        do { record = try RunRecord(located) } catch { throw failure("\(error)", Exit.no) }
        let recordedThreads = (try? record.json("provenance.json"))?["threads"]?.intValue ?? 1
        let outcome: Reproducer.Outcome
        let folder: String
        do {
            folder = try Reproducer.makeScratch(under: scratch, hash: record.hash)
            outcome = try Reproducer(
                original: record, scratch: folder, threads: threads ?? recordedThreads, tolerance: tolerance,
                execute: { plan, threads, log in try Executor.execute(plan, threads: threads, log: log) }
            ).run()
        } catch let stop as StopSignals.Interrupted {
            throw stop
        } catch {
            throw failure("\(error)", error is RunRecord.Problem ? Exit.no : stageExitCode(for: error))
        }
        let rows = outcome.files.filter { $0.status != "identical" }.map {
            [$0.name, $0.status, $0.maxRelative.map(cell) ?? "-", $0.derived ? "derived" : "result"]
        }
        print("original:     \(outcome.original)")
        print("reproduction: \(outcome.reproduction)")
        print(
            "result:       \(outcome.verdict.rawValue) (\(outcome.files.filter { $0.status == "identical" }.count) of \(outcome.files.count) files identical)"
        )
        print(
            "expected:     \(outcome.bitwiseExpected ? "bitwise identical (same settings)" : "within a relative tolerance of \(cell(outcome.tolerance))")"
        )
        if !rows.isEmpty {
            print(TextTable(headers: ["file", "status", "max rel. diff", "role"], rows: rows).render(.text))
        }
        for cause in outcome.causes { print("likely cause: \(cause)") }
        if outcome.causes.isEmpty {
            for change in outcome.settingChanges { print("setting changed (no effect): \(change)") }
        }
        print(outcome.passed ? "REPRODUCED" : "NOT REPRODUCED")
        if outcome.passed && !keep { try? FileManager.default.removeItem(atPath: folder) }
        if !outcome.passed {
            print("kept for inspection: \(folder)")
            throw Exit.no
        }
    }

    func validate() throws {
        try OptionChecks.threads(threads)
        try OptionChecks.nonNegative(tolerance, name: "--tolerance")
    }
}
