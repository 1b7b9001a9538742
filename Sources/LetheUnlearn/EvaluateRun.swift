import LetheRuns
import Foundation
import LetheJSON
import LetheSpec
import LetheTensor

/// Executes a `kind: evaluate` plan: measures one model (a pretrain stage's or `model.checkpoint`)
/// on held-out test images of the retain and forget classes (all classes when the spec names no
/// split), with the same metrics, report and run directory as an unlearning run.
public struct EvaluationRun: StageExecutor {
    public let plan: Plan
    public let threads: Int

    public init(plan: Plan, threads: Int) {
        self.plan = plan
        self.threads = threads
    }

    public func execute() throws -> String {
        let context = try RunContext(plan, threads: threads)
        var initRNG = context.seed.split("init")
        let model = try context.originalModel(plan, rng: &initRNG)
        model.module.setTrainable(false)
        let evaluator = try context.evaluator(plan)
        let result = evaluator.evaluate(model)
        let eval = context.evaluationRecord(evaluator, method: "Original", models: [("original", result)])
        let dir = try RunDirectory(finalPath: plan.runDirectory)
        try dir.write(
            "splits.json",
            json: RunContext.splitsRecord(train: [], test: evaluator.splits.map { ("test_" + $0.name, $0.indices) }))
        let report = RunReport(
            plan: plan, eval: JSONValue.object(eval), curve: [], models: [(name: "original", result: result)],
            curveKeys: [])
        return try Training.finish(
            dir, plan: plan, module: nil, curve: [], timing: [], eval: .object(eval),
            samples: context.sampleRows([result]), threads: threads, mode: context.mode, report: report)
    }
}
