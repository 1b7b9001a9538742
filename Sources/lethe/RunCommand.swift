import ArgumentParser
import Foundation
import LetheRuns
import LetheUnlearn
import LetheSpec

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan a spec and execute its stages into runs/<config-hash>/.",
        discussion:
            "Stages run in order: the pretrain spec the model names, the feature classifier that the metrics need, then the run itself. A stage whose run directory is finished (it has a manifest) is reused by config hash. A stage that was interrupted (killed, preempted, stopped with Ctrl-C or SIGTERM) resumes from the last training state it saved (train.checkpoint_every) and ends bit for bit where an uninterrupted run ends."
    )

    @Argument(help: "Spec file.", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String

    @OptionGroup var options: SpecOptions

    @Option(parsing: .unconditional, help: "Threads for the numeric core (recorded in the run's provenance).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print the process's peak resident memory at the end (MiB).")
    var printResources = false

    @Option(
        help:
            "Refuse to run unless the spec's config hash is this one (what a sweep's jobs pass, so a spec edited after submission is not run under the old name)."
    )
    var expectHash: String?

    @Flag(help: "Build only the stages the run needs (its original model, the feature classifier), not the run itself.")
    var dependenciesOnly = false

    func validate() throws { try OptionChecks.threads(threads) }

    func run() throws {
        defer {
            if printResources {
                print("resources: peak_rss_mib " + (peakResidentMiB().map { String(format: "%.1f", $0) } ?? "nan"))
            }
        }
        let plan = try options.plan(spec)
        if let expectHash, expectHash != plan.configHash {
            throw failure(
                "\(spec): its config hash is now \(plan.configHash.prefix(16)), not \(expectHash.prefix(16)) as expected: the spec, a file it names or its overrides changed since this command was written; plan the sweep again",
                Exit.no)
        }
        print(PlanText.summary(plan))
        if dependenciesOnly {
            do { try Executor.executeDependencies(plan, threads: threads) } catch let stop as StopSignals.Interrupted {
                printError(stop.description)
                stop.die()
            } catch {
                throw failure("\(error)", stageExitCode(for: error))
            }
            return
        }
        let dir = try execute(plan, threads: threads)
        if let eval = try? String(contentsOfFile: dir + "/eval.json", encoding: .utf8) { print(eval, terminator: "") }
        if FileManager.default.fileExists(atPath: dir + "/report.html") { print("report: \(dir)/report.html") }
    }
}

/// Executes a plan's stages; a failure is printed and becomes exit code 2 (1 when a finished stage it
/// would reuse does not verify). A stop signal that a training loop honoured (its state saved) ends
/// the process by that signal.
func execute(_ plan: Plan, threads: Int) throws -> String {
    do {
        return try Executor.execute(plan, threads: threads)
    } catch let stop as StopSignals.Interrupted {
        printError(stop.description)
        stop.die()
    } catch {
        throw failure("\(error)", stageExitCode(for: error))
    }
}
