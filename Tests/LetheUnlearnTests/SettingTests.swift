import Foundation
import LetheJSON
import LetheRuns
import LetheSpec
import Testing

@testable import LetheUnlearn

/// Every setting that shapes training changes what a run does: two runs that differ only in it must
/// differ where it acts (a setting the executor ignored would leave them identical).
@Suite(.serialized) struct SettingChangesBehaviourTests {
    static let mae =
        "{architecture: mae, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}"
    static let diffusion =
        "{architecture: diffusion, diffusion: {channels: [8, 16], time_embedding: 16, timesteps: 10, sampling_steps: 2, SAMPLER}}"

    /// A tiny pretrain run with `train` settings (and `model`); returns its directory.
    func pretrain(train: String, model: String = mae) throws -> String {
        let base = scratch()
        try """
        version: 1
        kind: pretrain
        seed: 4
        data: {dataset: fashion-mnist, per_class_limit: 4}
        model: \(model)
        train: {steps: 4, batch_size: 8, log_every: 100, \(train)}
        evaluate: {test_per_class: 1, grid_samples: 2}
        output: {dir: \(base)/runs}
        """.write(toFile: base + "/p.yaml", atomically: true, encoding: .utf8)
        let plan = try Planner(workingDirectory: base).plan(specPath: base + "/p.yaml")
        return try Executor.execute(plan, threads: 1, log: { _ in })
    }

    func checkpoint(_ dir: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: dir + "/checkpoint.safetensors"))
    }

    func column(_ dir: String, _ key: String) throws -> [Double] {
        try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONParser.parse(String($0))[key]?.doubleValue }
    }

    @Test func theOptimizerChangesTheWeights() throws {
        let adam = try pretrain(train: "optimizer: {name: adam, lr: 0.001}")
        let sgd = try pretrain(train: "optimizer: {name: sgd, lr: 0.001}")
        let adamw = try pretrain(train: "optimizer: {name: adamw, lr: 0.001, weight_decay: 0.1}")
        #expect(try checkpoint(adam) != checkpoint(sgd))
        #expect(try checkpoint(adam) != checkpoint(adamw))
        #expect(
            try column(adam, "loss").first == column(sgd, "loss").first, "the first loss is taken before any update")
    }

    @Test func theScheduleChangesTheLearningRates() throws {
        let constant = try pretrain(train: "optimizer: {lr: 0.001}, schedule: {kind: constant}")
        let cosine = try pretrain(train: "optimizer: {lr: 0.001}, schedule: {kind: cosine, min_lr: 0.0001}")
        let warm = try pretrain(train: "optimizer: {lr: 0.001}, schedule: {kind: constant, warmup_steps: 2}")
        #expect(try column(constant, "lr") == [0.001, 0.001, 0.001, 0.001])
        #expect(try column(cosine, "lr").first == 0.001 && column(cosine, "lr").last! < 0.001)
        #expect(try column(warm, "lr").first! < 0.001)
        #expect(try checkpoint(constant) != checkpoint(cosine))
    }

    @Test func gradientClippingChangesTheUpdate() throws {
        let free = try pretrain(train: "optimizer: {name: sgd, lr: 0.01}")
        let clipped = try pretrain(train: "optimizer: {name: sgd, lr: 0.01}, grad_clip: 0.000001")
        #expect(
            try column(free, "grad_norm").first == column(clipped, "grad_norm").first,
            "the norm is recorded before clipping")
        #expect(try checkpoint(free) != checkpoint(clipped))
    }

    @Test func theSamplerChangesTheCompletions() throws {
        let ddim = try pretrain(
            train: "optimizer: {lr: 0.001}",
            model: Self.diffusion.replacingOccurrences(of: "SAMPLER", with: "sampler: ddim"))
        let ddpm = try pretrain(
            train: "optimizer: {lr: 0.001}",
            model: Self.diffusion.replacingOccurrences(of: "SAMPLER", with: "sampler: ddpm"))
        let weights = { (dir: String) in try RunRecord.checkpoint(at: dir + "/checkpoint.safetensors")?.map(\.values) }
        #expect(
            try weights(ddim) == weights(ddpm),
            "the sampler does not touch training (the files differ only in their config hash)")
        let a = try RunStore.json(ddim, "eval.json")
        let b = try RunStore.json(ddpm, "eval.json")
        #expect(a != nil && a != b, "the completions, and so the metrics, differ")
    }
}

@Suite struct ReportTextTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/LetheUnlearn/ReportText").path

    @Test func theEmbeddedProseMatchesItsFiles() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder).filter { $0.hasSuffix(".html") }
            .sorted()
        #expect(files == EmbeddedReportText.files.map(\.name).sorted(), "run `make schemas`")
        for file in EmbeddedReportText.files {
            let onDisk = try String(contentsOfFile: Self.folder + "/" + file.name, encoding: .utf8)
            #expect(
                onDisk.trimmingCharacters(in: .newlines) == file.text.trimmingCharacters(in: .newlines),
                "\(file.name): run `make schemas`")
        }
    }

    @Test func placeholdersAreFilledAndEscaped() {
        let text = RunReport.text("samples.html", ["models": "original, <unlearned>"])
        #expect(text.contains("original, &lt;unlearned&gt;") && !text.contains("{{"))
    }
}
