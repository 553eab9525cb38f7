// Independent XMLDSig signer/verifier for application packages, on the JDK's own
// javax.xml.crypto.dsig (Apache Santuario inside the JDK). Used by the interop tests only.
//
//   java -cp <classes> JavaSigner <job-file>...
//
// One JVM runs many jobs (class loading dominates the run time). A job file is UTF-8
// "key=value" lines, so Japanese member names survive whatever locale the JVM runs in:
// mode (sign|verify), in, report, and for sign: key, cert, out, c14n (inclusive|exclusive),
// uri (raw|percent), id; plus one "member=<uri>\t<local path>" line per package member, in
// reference order. Each job writes its outcome to its report file ("SIGNED", the verify
// report ending in "OK"/"FAIL", or "ERROR ..."). Source is ASCII only: Japanese names are
// written as unicode escapes.

import java.io.ByteArrayInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.Key;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import javax.xml.crypto.AlgorithmMethod;
import javax.xml.crypto.Data;
import javax.xml.crypto.KeySelector;
import javax.xml.crypto.KeySelectorException;
import javax.xml.crypto.KeySelectorResult;
import javax.xml.crypto.OctetStreamData;
import javax.xml.crypto.URIDereferencer;
import javax.xml.crypto.URIReference;
import javax.xml.crypto.URIReferenceException;
import javax.xml.crypto.XMLCryptoContext;
import javax.xml.crypto.dom.DOMURIReference;
import javax.xml.crypto.dsig.CanonicalizationMethod;
import javax.xml.crypto.dsig.DigestMethod;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.SignatureMethod;
import javax.xml.crypto.dsig.SignedInfo;
import javax.xml.crypto.dsig.Transform;
import javax.xml.crypto.dsig.XMLSignature;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMSignContext;
import javax.xml.crypto.dsig.dom.DOMValidateContext;
import javax.xml.crypto.dsig.keyinfo.KeyInfo;
import javax.xml.crypto.dsig.keyinfo.KeyInfoFactory;
import javax.xml.crypto.dsig.keyinfo.X509Data;
import javax.xml.crypto.dsig.spec.C14NMethodParameterSpec;
import javax.xml.crypto.dsig.spec.TransformParameterSpec;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.Transformer;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;

import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

public final class JavaSigner {
    static final String MANIFEST = "\u69cb\u6210\u60c5\u5831";   // kousei jouhou
    static final String SIGNATURE_HOLDER = "\u7f72\u540d\u60c5\u5831";  // shomei jouhou

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: JavaSigner <job-file>...");
            System.exit(2);
        }
        for (String jobFile : args) {
            Map<String, String> job = new LinkedHashMap<>();
            Map<String, Path> members = new LinkedHashMap<>();
            for (String line : Files.readAllLines(Paths.get(jobFile), StandardCharsets.UTF_8)) {
                if (line.isEmpty()) continue;
                int eq = line.indexOf('=');
                String k = line.substring(0, eq), v = line.substring(eq + 1);
                if (k.equals("member")) {
                    int tab = v.indexOf('\t');
                    members.put(v.substring(0, tab), Paths.get(v.substring(tab + 1)));
                } else {
                    job.put(k, v);
                }
            }
            String report;
            try {
                report = job.get("mode").equals("sign") ? sign(job, members) : verify(job, members);
            } catch (Exception e) {
                StringWriter trace = new StringWriter();
                e.printStackTrace(new PrintWriter(trace));
                report = "ERROR " + trace;
            }
            Files.write(Paths.get(job.get("report")), report.getBytes(StandardCharsets.UTF_8));
        }
    }

    static Document parse(Path path) throws Exception {
        DocumentBuilderFactory dbf = DocumentBuilderFactory.newInstance();
        dbf.setNamespaceAware(true);
        dbf.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        return dbf.newDocumentBuilder().parse(path.toFile());
    }

    static Element manifestElement(Document doc) {
        NodeList found = doc.getDocumentElement().getElementsByTagNameNS(null, MANIFEST);
        if (found.getLength() != 1) throw new IllegalStateException("expected one manifest element");
        return (Element) found.item(0);
    }

    static String sign(Map<String, String> job, Map<String, Path> members) throws Exception {
        Document doc = parse(Paths.get(job.get("in")));
        Element manifest = manifestElement(doc);
        manifest.setIdAttributeNS(null, "ID", true);
        Element holder = doc.createElementNS(null, SIGNATURE_HOLDER);
        doc.getDocumentElement().appendChild(holder);
        doc.getDocumentElement().appendChild(doc.createTextNode("\n"));

        XMLSignatureFactory fac = XMLSignatureFactory.getInstance("DOM");
        String c14n = job.get("c14n").equals("exclusive") ? CanonicalizationMethod.EXCLUSIVE
                                                           : CanonicalizationMethod.INCLUSIVE;
        String manifestUri = "#" + (job.get("uri").equals("percent") ? percentEncode(MANIFEST) : MANIFEST);
        DigestMethod sha256 = fac.newDigestMethod(DigestMethod.SHA256, null);
        List<Reference> refs = new ArrayList<>();
        Transform transform = fac.newTransform(c14n, (TransformParameterSpec) null);
        refs.add(fac.newReference(manifestUri, sha256, Collections.singletonList(transform), null, null));
        for (String uri : members.keySet()) {
            refs.add(fac.newReference(uri, sha256));
        }
        SignedInfo si = fac.newSignedInfo(
                fac.newCanonicalizationMethod(c14n, (C14NMethodParameterSpec) null),
                fac.newSignatureMethod(SignatureMethod.RSA_SHA256, null), refs);
        X509Certificate cert = loadCert(Paths.get(job.get("cert")));
        KeyInfoFactory kif = fac.getKeyInfoFactory();
        KeyInfo ki = kif.newKeyInfo(Collections.singletonList(
                kif.newX509Data(Collections.singletonList(cert))));
        XMLSignature signature = fac.newXMLSignature(si, ki, null, job.get("id"), null);

        DOMSignContext ctx = new DOMSignContext(loadKey(Paths.get(job.get("key"))), holder);
        ctx.setIdAttributeNS(manifest, null, "ID");
        ctx.setURIDereferencer(new PackageDereferencer(members, fac.getURIDereferencer()));
        signature.sign(ctx);

        Transformer out = TransformerFactory.newInstance().newTransformer();
        out.setOutputProperty(OutputKeys.ENCODING, "UTF-8");
        try (OutputStream os = new FileOutputStream(job.get("out"))) {
            out.transform(new DOMSource(doc), new StreamResult(os));
        }
        return "SIGNED";
    }

    static String verify(Map<String, String> job, Map<String, Path> members) throws Exception {
        Document doc = parse(Paths.get(job.get("in")));
        Element manifest = manifestElement(doc);
        manifest.setIdAttributeNS(null, "ID", true);
        NodeList sigs = doc.getElementsByTagNameNS(XMLSignature.XMLNS, "Signature");
        if (sigs.getLength() != 1) throw new IllegalStateException("expected one Signature");
        XMLSignatureFactory fac = XMLSignatureFactory.getInstance("DOM");
        DOMValidateContext ctx = new DOMValidateContext(new CertificateKeySelector(), sigs.item(0));
        ctx.setIdAttributeNS(manifest, null, "ID");
        ctx.setProperty("org.jcp.xml.dsig.secureValidation", Boolean.TRUE);
        ctx.setURIDereferencer(new PackageDereferencer(members, fac.getURIDereferencer()));
        XMLSignature signature = fac.unmarshalXMLSignature(ctx);
        boolean valid = signature.validate(ctx);
        StringBuilder report = new StringBuilder();
        for (Object o : signature.getSignedInfo().getReferences()) {
            Reference ref = (Reference) o;
            report.append("reference ").append(ref.getURI()).append(ref.validate(ctx) ? " OK\n" : " FAIL\n");
        }
        report.append("signature value ").append(signature.getSignatureValue().validate(ctx) ? "OK\n" : "FAIL\n");
        return report.append(valid ? "OK" : "FAIL").toString();
    }

    /** Percent-decodes same-document fragments (as UTF-8) and reads members from disk. */
    static final class PackageDereferencer implements URIDereferencer {
        private final Map<String, Path> members;
        private final URIDereferencer fallback;

        PackageDereferencer(Map<String, Path> members, URIDereferencer fallback) {
            this.members = members;
            this.fallback = fallback;
        }

        @Override
        public Data dereference(URIReference ref, XMLCryptoContext ctx) throws URIReferenceException {
            String uri = ref.getURI();
            if (uri != null && uri.startsWith("#")) {
                String decoded = "#" + percentDecode(uri.substring(1));
                if (decoded.equals(uri)) return fallback.dereference(ref, ctx);
                final Node here = ((DOMURIReference) ref).getHere();
                final String type = ref.getType();
                DOMURIReference decodedRef = new DOMURIReference() {
                    public Node getHere() { return here; }
                    public String getURI() { return decoded; }
                    public String getType() { return type; }
                };
                return fallback.dereference(decodedRef, ctx);
            }
            Path path = members.get(uri);
            if (path == null) throw new URIReferenceException("not a package member: " + uri);
            try {
                return new OctetStreamData(new ByteArrayInputStream(Files.readAllBytes(path)), uri, null);
            } catch (IOException e) {
                throw new URIReferenceException(e);
            }
        }
    }

    /** Takes the key from the signature's own certificate: trust is judged elsewhere. */
    static final class CertificateKeySelector extends KeySelector {
        @Override
        public KeySelectorResult select(KeyInfo keyInfo, Purpose purpose, AlgorithmMethod method,
                                        XMLCryptoContext context) throws KeySelectorException {
            for (Object item : keyInfo.getContent()) {
                if (!(item instanceof X509Data)) continue;
                for (Object entry : ((X509Data) item).getContent()) {
                    if (entry instanceof X509Certificate) {
                        final Key key = ((X509Certificate) entry).getPublicKey();
                        return () -> key;
                    }
                }
            }
            throw new KeySelectorException("no X509Certificate in KeyInfo");
        }
    }

    static String percentEncode(String text) {
        StringBuilder sb = new StringBuilder();
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "-._~".indexOf(c) >= 0) {
                sb.append((char) c);
            } else {
                sb.append(String.format("%%%02X", c));
            }
        }
        return sb.toString();
    }

    static String percentDecode(String text) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '%' && i + 2 < text.length()) {
                bytes.write(Integer.parseInt(text.substring(i + 1, i + 3), 16));
                i += 2;
            } else {
                byte[] raw = String.valueOf(c).getBytes(StandardCharsets.UTF_8);
                bytes.write(raw, 0, raw.length);
            }
        }
        return new String(bytes.toByteArray(), StandardCharsets.UTF_8);
    }

    static PrivateKey loadKey(Path pem) throws Exception {
        String body = new String(Files.readAllBytes(pem), StandardCharsets.US_ASCII)
                .replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        return KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(Base64.getDecoder().decode(body)));
    }

    static X509Certificate loadCert(Path pem) throws Exception {
        return (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(Files.readAllBytes(pem)));
    }
}
