import LetheSpec
import LetheTensor

/// Runs a plan's stages in order (pretrain dependencies, the feature classifier, the run itself),
/// reusing every stage whose run directory is finished. Returns the run's directory.
public enum Executor {
    @discardableResult
    public static func execute(_ plan: Plan, threads: Int, log: (String) -> Void = { print($0) }) throws -> String {
        try Numerics.exclusively { try run(plan, threads: threads, log: log) }
    }

    static func run(_ plan: Plan, threads: Int, log: (String) -> Void) throws -> String {
        for dependency in plan.dependencies { _ = try run(dependency, threads: threads, log: log) }
        if let stage = ClassifierStage(plan: plan, threads: threads).stage, RunDirectory.finished(stage.runDirectory) {
            log("classifier \(stage.configHash.prefix(16)): done before, reusing \(stage.runDirectory)")
        }
        if RunDirectory.finished(plan.runDirectory) {
            log("\(plan.kind) \(plan.configHash.prefix(16)): done before, reusing \(plan.runDirectory)")
            return plan.runDirectory
        }
        let dir: String
        switch plan.kind {
        case "pretrain": dir = try Pretrainer(plan: plan, threads: threads).run()
        case "unlearn": dir = try Unlearner(plan: plan, threads: threads).run()
        case "evaluate": dir = try EvaluationRun(plan: plan, threads: threads).run()
        default: throw RunError("kind \(plan.kind) has no executor")
        }
        log("\(plan.kind) \(plan.configHash.prefix(16)): finished, \(dir)")
        return dir
    }
}

/// One stage's executor: `run()` holds the numeric core for the whole stage and returns the run
/// directory it wrote.
public protocol StageExecutor {
    var plan: Plan { get }
    var threads: Int { get }
    func execute() throws -> String
}

extension StageExecutor {
    public func run() throws -> String { try Numerics.exclusively { try execute() } }
}
