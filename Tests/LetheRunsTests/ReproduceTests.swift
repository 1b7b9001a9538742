import Foundation
import Testing
import LetheJSON
import LetheSpec
@testable import LetheRuns
import LetheUnlearn

/// Tiny specs in a scratch folder: a pretrain and an unlearn run of a small MAE on real data.
struct TinyRuns {
    let base = scratch()
    static let model =
        "{architecture: mae, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}"

    func write(alpha: Double = 0.25, mode: String = "fast", name: String = "un.yaml") throws -> String {
        try """
        version: 1
        kind: pretrain
        data: {dataset: fashion-mnist, per_class_limit: 8}
        model: \(Self.model)
        train: {steps: 2, batch_size: 8, log_every: 100}
        evaluate: {test_per_class: 1}
        numerics: {mode: \(mode)}
        """.write(toFile: base + "/pre.yaml", atomically: true, encoding: .utf8)
        try """
        version: 1
        kind: unlearn
        data: {dataset: fashion-mnist, per_class_limit: 8, forget: {classes: [5, 7]}, retain: {classes: [0, 1]}}
        model: {architecture: mae, pretrain: pre.yaml, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}
        unlearn: {method: ours, alpha: \(alpha)}
        train: {steps: 3, batch_size: 4, forget_batch_size: 4, log_every: 100, optimizer: {name: adam, lr: 1.0e-2}}
        evaluate: {test_per_class: 2, metrics: [psnr, ssim], grid_samples: 4}
        numerics: {mode: \(mode)}
        """.write(toFile: base + "/" + name, atomically: true, encoding: .utf8)
        return base + "/" + name
    }

    func run(_ spec: String, threads: Int = 1, output: String? = nil) throws -> String {
        let overrides = try output.map { [try Override(parsing: "output.dir=\($0)")] } ?? []
        let plan = try Planner(workingDirectory: base).plan(specPath: spec, overrides: overrides)
        return try Executor.execute(plan, threads: threads, log: { _ in })
    }

    static func manifest(_ dir: String) throws -> String {
        try String(contentsOfFile: dir + "/manifest.json", encoding: .utf8)
    }
}

@Suite struct RunDeterminismTests {
    @Test func theSameSpecTwiceGivesAnIdenticalRunDirectory() throws {
        let t = TinyRuns()
        let spec = try t.write()
        let first = try t.run(spec, output: t.base + "/one")
        let second = try t.run(spec, output: t.base + "/two")
        #expect(URL(fileURLWithPath: first).lastPathComponent == URL(fileURLWithPath: second).lastPathComponent)
        let (a, b) = (try RunRecord(first), try RunRecord(second))
        #expect(a.manifest.filter { b.manifest[$0.key] != $0.value }.map(\.key).sorted() == [])
        #expect(try TinyRuns.manifest(first) == TinyRuns.manifest(second), "manifests differ")
        let m = try RunRecord(first)
        #expect(
            m.manifest["checkpoint.safetensors"] != nil && m.manifest["timing.jsonl"] == nil
                && m.unhashed == ["timing.jsonl"])
    }

    @Test func strictModeIsIdenticalAcrossThreadCounts() throws {
        let t = TinyRuns()
        let spec = try t.write(mode: "strict")
        let one = try RunRecord(try t.run(spec, threads: 1, output: t.base + "/t1"))
        let two = try RunRecord(try t.run(spec, threads: 2, output: t.base + "/t2"))
        #expect(
            one.manifest.filter { $0.key != "provenance.json" && two.manifest[$0.key] != $0.value }.map(\.key).sorted()
                == [])
        let pretrain = (
            URL(fileURLWithPath: one.path).deletingLastPathComponent().path,
            URL(fileURLWithPath: two.path).deletingLastPathComponent().path
        )
        let p1 = try RunRecord(
            pretrain.0 + "/" + (one.originalRun.map { URL(fileURLWithPath: $0).lastPathComponent } ?? ""))
        let p2 = try RunRecord(
            pretrain.1 + "/" + (two.originalRun.map { URL(fileURLWithPath: $0).lastPathComponent } ?? ""))
        #expect(
            p1.manifest.filter { $0.key != "provenance.json" && p2.manifest[$0.key] != $0.value }.map(\.key).sorted()
                == [], "pretrain runs")
        #expect(
            one.manifest["provenance.json"] != two.manifest["provenance.json"], "provenance records the thread count")
    }
}

@Suite struct ReproduceTests {
    @Test func aRunReproducesBitwiseOnTheSameSettings() throws {
        let t = TinyRuns()
        let dir = try t.run(try t.write())
        let outcome = try Reproducer(
            original: try RunRecord(dir), scratch: t.base + "/scratch", threads: 1, execute: Executor.execute
        ).run(log: {
            _ in
        })
        #expect(
            outcome.verdict == .bitwise && outcome.bitwiseExpected && outcome.passed,
            "\(outcome.files.filter { $0.status != "identical" }.map(\.name)) \(outcome.causes)")
        #expect(outcome.causes.isEmpty)
    }

    @Test func anotherThreadCountIsNamedAsTheCause() throws {
        let t = TinyRuns()
        let dir = try t.run(try t.write(), threads: 1)
        let outcome = try Reproducer(
            original: try RunRecord(dir), scratch: t.base + "/scratch", threads: 2, execute: Executor.execute
        ).run(log: {
            _ in
        })
        #expect(!outcome.bitwiseExpected)
        #expect(outcome.settingChanges.contains { $0.contains("thread count: 1 then, 2 now") })
        #expect(outcome.verdict == .bitwise || outcome.causes.contains { $0.contains("thread count") })
        #expect(
            outcome.passed,
            "fast mode at 2 threads stays within tolerance: \(outcome.files.map { "\($0.name) \($0.status) \($0.maxRelative ?? -1)" })"
        )
    }

    @Test func aTamperedOrIncompleteRunIsAClearErrorNotACrash() throws {
        let t = TinyRuns()
        let dir = try t.run(try t.write())
        try "{\"step\": 1}\n".write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        #expect {
            try Reproducer(original: try RunRecord(dir), scratch: t.base + "/s", threads: 1, execute: Executor.execute)
                .run(log: { _ in })
        } throws: {
            "\($0)".contains("metrics.jsonl: changed since the run finished")
        }
        #expect { try RunDiff(dir, dir) } throws: { "\($0)".contains("does not match its manifest") }
        try FileManager.default.removeItem(atPath: dir + "/checkpoint.safetensors")
        #expect(try RunRecord(dir).verify().contains("checkpoint.safetensors: missing"))
        try FileManager.default.removeItem(atPath: dir + "/manifest.json")
        #expect { try RunRecord(dir) } throws: { "\($0)".contains("no manifest.json") }
        try "not json".write(toFile: dir + "/manifest.json", atomically: true, encoding: .utf8)
        #expect { try RunRecord(dir) } throws: { "\($0)".contains("not valid JSON") }
        #expect { try RunStore(root: t.base + "/runs").locate("ffff") } throws: { "\($0)".contains("no finished run") }
    }
}

@Suite struct DiffTests {
    @Test func diffShowsTheSpecChangeMetricDeltasAndCheckpointLayers() throws {
        let t = TinyRuns()
        let a = try t.run(try t.write(alpha: 0.25, name: "a.yaml"))
        let b = try t.run(try t.write(alpha: 2.0, name: "b.yaml"))
        let d = try RunDiff(a, b)
        #expect(d.differ)
        #expect(d.spec.map(\.pointer) == ["/unlearn/alpha"], "\(d.spec.map(\.pointer))")
        #expect(d.spec.first?.after == .number(2))
        #expect(d.metrics.contains { $0.name == "unlearned.forget.psnr" && $0.a != $0.b && $0.better != nil })
        #expect(
            d.metrics.contains { $0.name == "original.retain.psnr" && $0.a == $0.b }, "both start from one original")
        let layers = d.layers
        #expect(
            layers.contains { $0.layer == "blocks.0.attn.qkv" && ($0.norm ?? 0) > 0 && ($0.fromOriginalB ?? 0) > 0 })
        #expect(layers.contains { $0.layer == "decoder_pred" && $0.norm == 0 }, "the decoder is frozen")
        #expect(d.originalRun != nil)
        #expect(try !RunDiff(a, a).differ)
        let png = t.base + "/side.png"
        try d.writeSideBySide(to: png)
        #expect(FileManager.default.fileExists(atPath: png))
    }

    @Test func jsonDiffReportsLeavesByPointer() throws {
        let a = try JSONParser.parse(#"{"x": {"y": 1, "z": [1, 2]}, "gone": true, "a/b": 1}"#)
        let b = try JSONParser.parse(#"{"x": {"y": 2, "z": [1, 2, 3]}, "new": null, "a/b": 1}"#)
        let changes = JSONDiff.changes(a, b)
        #expect(changes.map(\.pointer) == ["/x/y", "/x/z", "/gone", "/new"])
        #expect(changes[2].after == nil && changes[3].before == nil && changes[3].after == .null)
    }
}

@Suite struct ResumeTests {
    @Test func aFinishedRunIsReusedAndAnInterruptedOneStartsAgain() throws {
        let t = TinyRuns()
        let spec = try t.write()
        let plan = try Planner(workingDirectory: t.base).plan(specPath: spec)
        var lines: [String] = []
        let dir = try Executor.execute(plan, threads: 1, log: { lines.append($0) })
        let stamp = try FileManager.default.attributesOfItem(atPath: dir + "/manifest.json")[.modificationDate] as? Date
        lines.removeAll()
        #expect(try Executor.execute(plan, threads: 1, log: { lines.append($0) }) == dir)
        #expect(
            lines.contains { $0.contains("done before, reusing") } && lines.filter { $0.contains("finished") }.isEmpty)
        #expect(
            try FileManager.default.attributesOfItem(atPath: dir + "/manifest.json")[.modificationDate] as? Date
                == stamp, "not rewritten")

        // An interrupted attempt: no manifest in the final place, a stale staging folder beside it.
        let manifest = try TinyRuns.manifest(dir)
        try FileManager.default.moveItem(atPath: dir, toPath: dir + ".partial")
        try FileManager.default.removeItem(atPath: dir + ".partial/manifest.json")
        try "stale".write(toFile: dir + ".partial/stale.txt", atomically: true, encoding: .utf8)
        #expect(!RunDirectory.finished(dir))
        let again = try Executor.execute(
            try Planner(workingDirectory: t.base).plan(specPath: spec), threads: 1, log: { _ in })
        #expect(again == dir && RunDirectory.finished(dir))
        #expect(
            !FileManager.default.fileExists(atPath: dir + "/stale.txt")
                && !FileManager.default.fileExists(atPath: dir + ".partial"))
        #expect(try TinyRuns.manifest(dir) == manifest, "the restarted run equals the first")
    }
}

@Suite struct EvaluateKindTests {
    @Test func anEvaluateSpecMeasuresTheOriginalModelOnly() throws {
        let t = TinyRuns()
        _ = try t.write()
        try """
        version: 1
        kind: evaluate
        data: {dataset: fashion-mnist, per_class_limit: 8, forget: {classes: [5, 7]}, retain: {classes: [0, 1]}}
        model: \(TinyRuns.model.dropLast()), pretrain: pre.yaml}
        evaluate: {test_per_class: 2, metrics: [psnr, ssim]}
        """.write(toFile: t.base + "/ev.yaml", atomically: true, encoding: .utf8)
        let dir = try t.run(t.base + "/ev.yaml")
        let eval = try #require(try RunStore.json(dir, "eval.json"))
        #expect(eval["method"] == .string("Original") && eval["unlearned"] == nil)
        #expect(
            eval["original"]?["forget"]?["psnr"]?.doubleValue != nil
                && eval["original"]?["retain"]?["ssim"]?.doubleValue != nil)
        #expect(
            !FileManager.default.fileExists(atPath: dir + "/checkpoint.safetensors"), "nothing trained, nothing to save"
        )
        #expect(FileManager.default.fileExists(atPath: dir + "/report.html"))
    }
}

/// The run store under tampering: a finished stage is verified before it is reused, everything a
/// manifest names stays inside the run directory, and nothing that is not a regular file is read.
@Suite struct RunStoreIntegrityTests {
    /// The pretrain run of `t`'s specs, run once.
    func pretrained(_ t: TinyRuns) throws -> (unlearn: String, pretrain: String) {
        let dir = try t.run(try t.write())
        let pretrain = try #require(try RunRecord(dir).originalRun)
        return (dir, pretrain)
    }

    @Test func aTamperedPretrainStageIsNotReused() throws {
        let t = TinyRuns()
        let (_, pretrain) = try pretrained(t)
        let checkpoint = pretrain + "/checkpoint.safetensors"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: checkpoint)))
        bytes[bytes.count - 3] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: checkpoint))
        // A dependent run that would reuse it (another alpha: a new unlearn stage).
        #expect { try t.run(try t.write(alpha: 0.5, name: "other.yaml")) } throws: { error in
            (error as? RunError)?.kind == .verification
                && "\(error)".contains("checkpoint.safetensors: changed since the run finished")
        }
        #expect(FileManager.default.fileExists(atPath: checkpoint), "nothing is deleted")
    }

    @Test func renamedDirectoriesAndExtraFilesDoNotVerify() throws {
        let t = TinyRuns()
        let (dir, _) = try pretrained(t)
        #expect(try RunRecord(dir).verify() == [])
        try "x".write(toFile: dir + "/extra.txt", atomically: true, encoding: .utf8)
        #expect(try RunRecord(dir).verify() == ["extra.txt: not in the manifest (added after the run finished)"])
        try FileManager.default.removeItem(atPath: dir + "/extra.txt")
        let renamed =
            URL(fileURLWithPath: dir).deletingLastPathComponent().path + "/" + String(repeating: "a", count: 64)
        try FileManager.default.moveItem(atPath: dir, toPath: renamed)
        let problems = try RunRecord(renamed).verify()
        #expect(problems.contains { $0.contains("config_hash: says") && $0.contains("renamed?") })
        #expect(problems.contains { $0.contains("hashes to") })
    }

    @Test func manifestPathsAreConfinedAndOnlyRegularFilesAreRead() throws {
        let t = TinyRuns()
        let (dir, _) = try pretrained(t)
        let manifestPath = dir + "/manifest.json"
        let original = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: manifestPath))))
        func withEntry(_ name: String) throws {
            let edited = original.setting(
                "/files/" + name.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1"),
                .string(String(repeating: "0", count: 64)))
            try (JSONText.pretty(edited) + "\n").write(toFile: manifestPath, atomically: true, encoding: .utf8)
        }
        try withEntry("../../../../etc/hostname")
        #expect(
            try RunRecord(dir).verify().contains {
                $0.hasPrefix("../../../../etc/hostname: names a path outside the run directory")
            })
        try withEntry("/etc/hostname")
        #expect(try RunRecord(dir).verify().contains { $0.hasPrefix("/etc/hostname: is not a path inside") })

        // A symbolic link to /dev/zero and a FIFO in place of listed files: refused at once, no hang.
        try (JSONText.pretty(original) + "\n").write(toFile: manifestPath, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: dir + "/eval.json")
        try FileManager.default.createSymbolicLink(atPath: dir + "/eval.json", withDestinationPath: "/dev/zero")
        try FileManager.default.removeItem(atPath: dir + "/metrics.jsonl")
        #expect(mkfifo(dir + "/metrics.jsonl", 0o644) == 0)
        let started = Date()
        let problems = try RunRecord(dir).verify()
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(problems.contains { $0.hasPrefix("eval.json: is a symbolic link") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("metrics.jsonl: is a FIFO") }, "\(problems)")
    }

    /// `reproduce --scratch DIR` with an existing DIR works in a new folder inside it and removes only that.
    @Test func theScratchFolderIsAlwaysOneLetheCreated() throws {
        let base = scratch()
        let mine = base + "/keep.txt"
        try "user data".write(toFile: mine, atomically: true, encoding: .utf8)
        let made = try Reproducer.makeScratch(under: base, hash: String(repeating: "b", count: 64))
        #expect(made.hasPrefix(base + "/lethe-reproduce-bbbbbbbbbbbb-") && made != base)
        let fresh = try Reproducer.makeScratch(under: base + "/new", hash: "c")
        #expect(fresh == base + "/new")
        #expect { try Reproducer.makeScratch(under: mine, hash: "d") } throws: {
            "\($0)".contains("expected a directory")
        }
        #expect(try String(contentsOfFile: mine, encoding: .utf8) == "user data")
    }
}
