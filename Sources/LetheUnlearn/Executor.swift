import LetheRuns
import LetheSpec
import LetheTensor

/// Runs a plan's stages in order (pretrain dependencies, the feature classifier, the run itself),
/// reusing every stage whose run directory is finished and verifies. Returns the run's directory.
///
/// Several processes may execute plans that share stages in one runs folder at once: each stage is
/// built under its lock (`StageLock`) by exactly one of them, and the others wait and reuse it.
public enum Executor {
    @discardableResult
    public static func execute(_ plan: Plan, threads: Int, log: (String) -> Void = { print($0) }) throws -> String {
        try Numerics.exclusively { try run(plan, threads: threads, log: log) }
    }

    /// Builds only what `plan` needs before its own stage: its pretrain dependencies and the feature
    /// classifier (a sweep builds shared stages this way, once, before the members that need them).
    public static func executeDependencies(_ plan: Plan, threads: Int, log: (String) -> Void = { print($0) }) throws {
        try Numerics.exclusively {
            for dependency in plan.dependencies { _ = try run(dependency, threads: threads, log: log) }
            try ClassifierStage(plan: plan, threads: threads).ensure(log: log)
        }
    }

    static func run(_ plan: Plan, threads: Int, log: (String) -> Void) throws -> String {
        for dependency in plan.dependencies { _ = try run(dependency, threads: threads, log: log) }
        let executor: any StageExecutor
        switch plan.spec.kind {
        case .pretrain: executor = Pretrainer(plan: plan, threads: threads)
        case .unlearn: executor = Unlearner(plan: plan, threads: threads)
        case .evaluate: executor = EvaluationRun(plan: plan, threads: threads)
        }
        return try executor.run(log: log)
    }
}

/// One stage's executor: `run()` holds the numeric core and the stage's lock for the whole stage,
/// reuses the stage when it is finished (after verifying it), and otherwise builds the feature
/// classifier its metrics need (a stage of its own, locked in turn) and then the stage with
/// `execute()`; it returns the run directory.
public protocol StageExecutor {
    var plan: Plan { get }
    var threads: Int { get }
    func execute() throws -> String
}

extension StageExecutor {
    public func run(log: (String) -> Void = { _ in }) throws -> String {
        try Numerics.exclusively {
            try StageLock.holding(plan.runDirectory, log: log) {
                let label = "\(plan.kind) \(plan.configHash.prefix(16))"
                if RunDirectory.finished(plan.runDirectory) {
                    try RunStore.verifyForReuse(plan.runDirectory)
                    log("\(label): done before, reusing \(plan.runDirectory)")
                    return plan.runDirectory
                }
                try ClassifierStage(plan: plan, threads: threads).ensure(log: log)
                let dir = try execute()
                log("\(label): finished, \(dir)")
                return dir
            }
        }
    }
}
