import ArgumentParser
import Foundation
import LetheFiles
import LetheJSON
import LetheRuns

struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List run directories: hash, kind, model, method, status, key metrics, date.",
        discussion:
            "Status is finished (manifest written), running (a .partial folder whose stage lock a process holds), interrupted (a .partial folder nobody is building; with the step a rerun resumes from when it saved its training state), incomplete (a hash-named folder without a manifest) or tampered (files, names or identity no longer match the manifest; checked with --verify). With --verify the exit code is 1 when any run is tampered or incomplete."
    )

    @Option(help: "Where run directories live.")
    var runs = "runs"

    @Option(help: "Output format: text, md or csv.")
    var format: TableFormat = .text

    @Flag(help: "Check every file against its run's manifest (reads every file).")
    var verify = false

    func run() throws {
        let fm = FileManager.default
        let names = ((try? fm.contentsOfDirectory(atPath: runs)) ?? []).sorted()
        var rows: [[String]] = []
        var bad = 0
        var details: [(String, [String])] = []
        for name in names {
            let path = runs + "/" + name
            let hash = name.hasSuffix(".partial") ? String(name.dropLast(".partial".count)) : name
            guard hash.count == 64, hash.allSatisfy(\.isHexDigit) else { continue }
            if name.hasSuffix(".partial") {
                let saved = RunDirectory.resumableStep(path)
                let state =
                    StageLock.isBusy(runs + "/" + hash)
                    ? "running" + (saved.map { " (state saved at step \($0))" } ?? "")
                    : saved.map { "interrupted (rerun the spec to resume from step \($0))" }
                        ?? "interrupted (rerun the spec to start it again)"
                rows.append([String(hash.prefix(16)), "-", "-", "-", state, "-", date(path)])
                continue
            }
            guard FileKind.of(path, followLinks: false) == .directory else {
                rows.append([String(hash.prefix(16)), "-", "-", "-", "not a directory", "-", "-"])
                bad += 1
                continue
            }
            let resolved = try? RunStore.json(path, "resolved.json")
            let eval = try? RunStore.json(path, "eval.json")
            let identity = try? RunStore.json(path, "identity.json")
            let kind = resolved?["kind"]?.stringValue ?? identity?["stage"]?.stringValue ?? "?"
            var status = RunDirectory.finished(path) ? "finished" : "incomplete"
            if status == "incomplete" { bad += 1 }
            if verify, status == "finished" {
                do {
                    let problems = try RunRecord(path).verify()
                    if !problems.isEmpty {
                        status = "tampered (\(problems.count) problem\(problems.count == 1 ? "" : "s"))"
                        details.append((String(hash.prefix(16)), problems))
                        bad += 1
                    }
                } catch {
                    status = "unreadable manifest"
                    details.append((String(hash.prefix(16)), ["\(error)"]))
                    bad += 1
                }
            }
            rows.append([
                String(hash.prefix(16)), kind, resolved?["model"]?["architecture"]?.stringValue ?? "-",
                eval?["method"]?.stringValue ?? resolved?["unlearn"]?["method"]?.stringValue ?? "-", status,
                keyMetrics(eval), date(path),
            ])
        }
        if rows.isEmpty {
            print("no runs in \(runs)/")
            return
        }
        print(
            TextTable(headers: ["hash", "kind", "model", "method", "status", "key metrics", "date"], rows: rows).render(
                format))
        for (hash, problems) in details {
            printError("\(hash): " + problems.joined(separator: "; "))
        }
        if verify && bad > 0 {
            printError("\(bad) run\(bad == 1 ? "" : "s") failed verification")
            throw Exit.no
        }
    }

    /// The numbers a reader scans for: forget and retain FID (or PSNR) of the unlearned model, or the
    /// pretrained model's completion PSNR (a tokenizer's reconstruction PSNR), or the classifier's accuracy.
    func keyMetrics(_ eval: JSONValue?) -> String {
        guard let eval else { return "-" }
        let model = eval["unlearned"] != nil ? "unlearned" : "original"
        if let r = eval[model]?["retain"], let f = eval[model]?["forget"] {
            let key = r["fid"] != nil ? "fid" : "psnr"
            return "\(key) D_R \(cell(r[key]?.doubleValue)) D_F \(cell(f[key]?.doubleValue))"
        }
        if let p = eval["psnr_hidden_region"]?["model"]?.doubleValue { return "psnr \(cell(p)) dB" }
        if let p = eval["reconstruction_psnr"]?["value"]?.doubleValue {  // MAGE's tokenizer stage
            return "reconstruction \(cell(p)) dB, \(eval["codebook"]?["used"]?.intValue ?? 0) codes"
        }
        if let a = eval["test_accuracy"]?.doubleValue { return "accuracy \(cell(a))" }
        return "-"
    }

    func date(_ path: String) -> String {
        let file = FileManager.default.fileExists(atPath: path + "/manifest.json") ? path + "/manifest.json" : path
        guard let d = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date else {
            return "-"
        }
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: d)
    }
}
