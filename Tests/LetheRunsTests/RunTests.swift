import Foundation
import Testing
import LetheJSON
import LetheSpec
@testable import LetheRuns
import LetheTensor
import LetheUnlearn

func scratch() -> String {
    let p = NSTemporaryDirectory() + "lethe-runs-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

@Suite struct RunDirectoryTests {
    @Test func aRunIsOnlyFinishedOnceItsManifestIsWritten() throws {
        let base = scratch()
        try StageLock.holding(base + "/abc") { try stageAndFinish(base) }
    }

    func stageAndFinish(_ base: String) throws {
        let dir = try RunDirectory(finalPath: base + "/abc")
        try dir.write("a.txt", text: "hello\n")
        try dir.write("sub/b.json", json: .object(JSONObject([("z", .integer(1)), ("a", .bool(true))])))
        #expect(!RunDirectory.finished(base + "/abc"), "staged, not finished")
        #expect(!FileManager.default.fileExists(atPath: base + "/abc"))
        try dir.finish()
        #expect(RunDirectory.finished(base + "/abc"))
        #expect(!FileManager.default.fileExists(atPath: base + "/abc.partial"))
        let manifest = try JSONParser.parse(
            Array(try Data(contentsOf: URL(fileURLWithPath: base + "/abc/manifest.json"))))
        #expect(manifest["files"]?["a.txt"] == .string(Digest.sha256("hello\n")))
        #expect(manifest["files"]?.objectValue?.keys.sorted() == ["a.txt", "sub/b.json"])
        #expect(
            try String(contentsOfFile: base + "/abc/sub/b.json", encoding: .utf8)
                == "{\n  \"a\": true,\n  \"z\": 1\n}\n")
    }

    @Test func anInterruptedAttemptIsDiscardedOnRetry() throws {
        let base = scratch()
        try StageLock.holding(base + "/r") { try interruptAndRetry(base) }
    }

    func interruptAndRetry(_ base: String) throws {
        let first = try RunDirectory(finalPath: base + "/r")
        try first.write("half.bin", bytes: [1, 2, 3])
        // The process dies here: no finish(). A new attempt starts clean.
        let second = try RunDirectory(finalPath: base + "/r")
        #expect(!FileManager.default.fileExists(atPath: second.path("half.bin")))
        try second.write("done.txt", text: "ok")
        try second.finish()
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: base + "/r").sorted() == ["done.txt", "manifest.json"])
    }

    /// Only the holder of the stage's lock stages a run, and a finished run is never replaced, even by
    /// a process that ignores the lock: its own work is left in the staging folder instead.
    @Test func aFinishedRunIsNeverReplacedOrDeleted() throws {
        let base = scratch()
        #expect { try RunDirectory(finalPath: base + "/x") } throws: { "\($0)".contains("stage lock") }
        try StageLock.holding(base + "/x") {
            let dir = try RunDirectory(finalPath: base + "/x")
            try dir.write("mine.txt", text: "first")
            // Someone else's folder appears where the run would go.
            try FileManager.default.createDirectory(atPath: base + "/x", withIntermediateDirectories: true)
            try "theirs".write(toFile: base + "/x/theirs.txt", atomically: true, encoding: .utf8)
            #expect { try dir.finish() } throws: { "\($0)".contains("already exists") }
            #expect(try String(contentsOfFile: base + "/x/theirs.txt", encoding: .utf8) == "theirs")
            #expect(FileManager.default.fileExists(atPath: base + "/x.partial/mine.txt"), "this run's work is kept")
            #expect { try RunDirectory(finalPath: base + "/x") } throws: { "\($0)".contains("never replaced") }
        }
    }
}

@Suite struct PretrainTests {
    /// A few steps of a tiny model on real Fashion-MNIST: the loss falls and the run directory is complete.
    @Test(arguments: ["mae", "vq_autoencoder", "diffusion"])
    func shortPretrainingRunWritesACompleteRunDirectory(architecture: String) throws {
        let base = scratch()
        let model: String
        switch architecture {
        case "mae":
            model =
                "{architecture: mae, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}"
        case "vq_autoencoder":
            model =
                "{architecture: vq_autoencoder, vq_autoencoder: {channels: [8, 16], codebook_size: 16, codebook_dim: 8}}"
        default:
            model =
                "{architecture: diffusion, diffusion: {channels: [8, 16], time_embedding: 16, timesteps: 10, sampling_steps: 2}}"
        }
        let spec = """
            version: 1
            kind: pretrain
            seed: 1
            data: {dataset: fashion-mnist, per_class_limit: 8}
            model: \(model)
            train: {steps: 12, batch_size: 8, log_every: 100, optimizer: {name: adam, lr: 3.0e-3}}
            evaluate: {test_per_class: 1, grid_samples: 4}
            output: {dir: \(base)/runs}
            """
        try spec.write(toFile: base + "/spec.yaml", atomically: true, encoding: .utf8)
        let plan = try Planner(workingDirectory: base).plan(specPath: base + "/spec.yaml")
        let dir = try Pretrainer(plan: plan, threads: 1).run()
        #expect(dir == base + "/runs/" + plan.configHash)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(
            files == [
                "checkpoint.safetensors", "config_hash", "eval.json", "manifest.json", "metrics.jsonl", "plan.json",
                "provenance.json", "resolved.json", "samples.png", "spec.yaml", "splits.json", "timing.jsonl",
            ])
        let losses = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONParser.parse(String($0))["loss"]?.doubleValue }
        #expect(losses.count == 12)
        #expect(
            losses.suffix(3).reduce(0, +) < losses.prefix(3).reduce(0, +),
            "\(architecture) loss did not fall: \(losses)")
        let eval = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/eval.json"))))
        #expect(eval["images"] == .integer(10))
        #expect(eval["psnr_hidden_region"]?["model"]?.doubleValue?.isFinite == true)
    }

    /// The original model's evaluation is computed once per process for runs that share it (as
    /// `lethe table` runs do), and never reused for another original.
    @Test func theOriginalsEvaluationIsSharedOnlyByRunsOfTheSameOriginal() throws {
        let base = scratch()
        let model =
            "{architecture: mae, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}"
        for seed in [1, 2] {
            try """
            version: 1
            kind: pretrain
            seed: \(seed)
            data: {dataset: fashion-mnist, per_class_limit: 8}
            model: \(model)}
            train: {steps: 3, batch_size: 8}
            evaluate: {test_per_class: 1, bootstrap: 10}
            output: {dir: \(base)/runs}
            """.write(toFile: base + "/pre\(seed).yaml", atomically: true, encoding: .utf8)
        }
        func original(_ pretrain: Int, _ method: String) throws -> JSONValue? {
            let name = "un-\(pretrain)-\(method).yaml"
            try """
            version: 1
            kind: unlearn
            data: {dataset: fashion-mnist, per_class_limit: 8, forget: {classes: [5, 7, 9]}}
            model: \(model), pretrain: pre\(pretrain).yaml}
            unlearn: {method: \(method)}
            train: {steps: 2, batch_size: 4, forget_batch_size: 4}
            evaluate: {test_per_class: 1, metrics: [psnr, ssim], bootstrap: 10}
            output: {dir: \(base)/runs}
            """.write(toFile: base + "/" + name, atomically: true, encoding: .utf8)
            let run = try Executor.execute(
                try Planner(workingDirectory: base).plan(specPath: base + "/" + name), threads: 1, log: { _ in })
            return try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: run + "/eval.json"))))[
                "per_mask"]?.arrayValue?.map { $0["original"] ?? .null }.first
        }
        let a = try original(1, "ours")
        let b = try original(1, "max-loss")
        let c = try original(2, "ours")
        #expect(a != nil && a == b)
        #expect(a != c)
    }

    /// MAGE's two stages on real Fashion-MNIST with a tiny model: the tokenizer stage saves the
    /// tokenizer alone and reports its reconstruction and codebook usage; the transformer stage loads
    /// it, keeps it frozen, and its masked-token cross-entropy falls; an unlearn run on top works.
    @Test func mageStagesChainAndTheTokenLossFalls() throws {
        let base = scratch()
        let model = """
            architecture: mage
              mage: {tokenizer: {channels: [8, 16], codebook_size: 16, codebook_dim: 8}, width: 16, depth: 1,
                     heads: 2, decoder_width: 16, decoder_depth: 1, decoder_heads: 2, decoding_steps: 2}
            """
        func spec(_ body: String) -> String {
            """
            version: 1
            seed: 1
            data: {dataset: fashion-mnist, per_class_limit: 16}
            model:
              \(model)
            \(body)
            evaluate: {test_per_class: 1, grid_samples: 4, bootstrap: 10}
            output: {dir: \(base)/runs}
            """
        }
        try spec("kind: pretrain\ntrain: {stage: tokenizer, steps: 8, batch_size: 8, optimizer: {lr: 3.0e-3}}")
            .write(toFile: base + "/tok.yaml", atomically: true, encoding: .utf8)
        try spec(
            "kind: pretrain\ntrain: {stage: transformer, steps: 30, batch_size: 16, optimizer: {lr: 3.0e-3}}"
        ).replacing("architecture: mage\n", with: "architecture: mage\n  pretrain: tok.yaml\n")
            .write(toFile: base + "/pre.yaml", atomically: true, encoding: .utf8)
        let plan = try Planner(workingDirectory: base).plan(specPath: base + "/pre.yaml")
        let dir = try Executor.execute(plan, threads: 1, log: { _ in })
        let tokenizerDir = plan.dependencies[0].runDirectory

        let tokenizerWeights = try Safetensors.read(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: tokenizerDir + "/checkpoint.safetensors"))))
        #expect(tokenizerWeights.tensors.allSatisfy { $0.name.hasPrefix("tokenizer.") })
        let tokenizerEval = try JSONParser.parse(
            Array(try Data(contentsOf: URL(fileURLWithPath: tokenizerDir + "/eval.json"))))
        #expect(tokenizerEval["reconstruction_psnr"]?["value"]?.doubleValue?.isFinite == true)
        let used = tokenizerEval["codebook"]?["used"]?.intValue ?? 0
        #expect(used >= 1 && used <= 16)
        #expect((tokenizerEval["codebook"]?["perplexity"]?.doubleValue ?? 0) >= 1)
        #expect(tokenizerEval["budget"]?["reconstruction_psnr_probe"]?.arrayValue?.count == 9)  // steps 0...8

        // The transformer stage's checkpoint holds the tokenizer unchanged.
        let weights = try Safetensors.read(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/checkpoint.safetensors"))))
        #expect(weights.tensors.contains { $0.name == "blocks.0.attn.qkv.weight" })
        for entry in tokenizerWeights.tensors {
            #expect(
                try weights[entry.name]?.values(as: Float.self) == entry.entry.values(as: Float.self), "\(entry.name)")
        }
        let losses = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONParser.parse(String($0))["loss"]?.doubleValue }
        #expect(losses.count == 30)
        #expect(
            losses.suffix(8).reduce(0, +) < losses.prefix(8).reduce(0, +), "the token loss did not fall: \(losses)")

        try spec(
            """
            kind: unlearn
            unlearn: {method: ours}
            train: {steps: 2, batch_size: 4, forget_batch_size: 4}
            """
        ).replacing("grid_samples: 4,", with: "grid_samples: 4, metrics: [psnr],").replacing(
            "architecture: mage\n", with: "architecture: mage\n  pretrain: pre.yaml\n"
        )
        .replacing("per_class_limit: 16}", with: "per_class_limit: 16, forget: {classes: [5, 7, 9]}}")
        .write(toFile: base + "/un.yaml", atomically: true, encoding: .utf8)
        let run = try Executor.execute(
            try Planner(workingDirectory: base).plan(specPath: base + "/un.yaml"), threads: 1, log: { _ in })
        let eval = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: run + "/eval.json"))))
        #expect(eval["unlearned"]?["forget"]?["psnr"]?.doubleValue?.isFinite == true, "\(eval)")
        #expect(eval["per_mask"]?.arrayValue?.first?["hole_code_change"] != nil, "\(eval)")
    }
}
