import Foundation
import Testing
import LetheJSON
import LetheSpec
@testable import LetheRuns
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
}
