import ArgumentParser
import Foundation
import LetheRuns
import LetheSpec

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan a spec and execute its stages into runs/<config-hash>/.",
        discussion: "Stages already finished (their run directory has a manifest) are reused by config hash. Pretraining runs today; the unlearning and evaluation executors are the next milestones, and a spec of those kinds runs its pretrain stage and then says so."
    )

    @Argument(help: "Spec file.", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String

    @OptionGroup var options: SpecOptions

    @Option(help: "Threads for the numeric core (recorded in the run's provenance).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        let plan = try options.plan(spec)
        print(PlanText.summary(plan))
        for dependency in plan.dependencies { try execute(dependency) }
        try execute(plan)
    }

    func execute(_ plan: Plan) throws {
        if RunDirectory.finished(plan.runDirectory) {
            print("\(plan.kind) \(plan.configHash.prefix(16)): done before, reusing \(plan.runDirectory)")
            return
        }
        let dir: String
        do {
            switch plan.kind {
            case "pretrain": dir = try Pretrainer(plan: plan, threads: threads).run()
            case "unlearn": dir = try Unlearner(plan: plan, threads: threads).run()
            default:
                print("lethe \(LetheVersion.current): the \(plan.kind) executor is not built yet; the plan above is what it will run.")
                return
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        print("\(plan.kind) \(plan.configHash.prefix(16)): finished, \(dir)")
        if let eval = try? String(contentsOfFile: dir + "/eval.json", encoding: .utf8) { print(eval) }
    }
}
