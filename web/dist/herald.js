// Herald web components (web/src), bundled with Lit 3.3.3 by esbuild. Generated: edit web/src and run `npm run build`.
var q=globalThis,F=q.ShadowRoot&&(q.ShadyCSS===void 0||q.ShadyCSS.nativeShadow)&&"adoptedStyleSheets"in Document.prototype&&"replace"in CSSStyleSheet.prototype,dt=Symbol(),kt=new WeakMap,L=class{constructor(t,e,s){if(this._$cssResult$=!0,s!==dt)throw Error("CSSResult is not constructable. Use `unsafeCSS` or `css` instead.");this.cssText=t,this.t=e}get styleSheet(){let t=this.o,e=this.t;if(F&&t===void 0){let s=e!==void 0&&e.length===1;s&&(t=kt.get(e)),t===void 0&&((this.o=t=new CSSStyleSheet).replaceSync(this.cssText),s&&kt.set(e,t))}return t}toString(){return this.cssText}},Et=i=>new L(typeof i=="string"?i:i+"",void 0,dt),$=(i,...t)=>{let e=i.length===1?i[0]:t.reduce((s,r,n)=>s+(o=>{if(o._$cssResult$===!0)return o.cssText;if(typeof o=="number")return o;throw Error("Value passed to 'css' function must be a 'css' function result: "+o+". Use 'unsafeCSS' to pass non-literal values, but take care to ensure page security.")})(r)+i[n+1],i[0]);return new L(e,i,dt)},Ct=(i,t)=>{if(F)i.adoptedStyleSheets=t.map(e=>e instanceof CSSStyleSheet?e:e.styleSheet);else for(let e of t){let s=document.createElement("style"),r=q.litNonce;r!==void 0&&s.setAttribute("nonce",r),s.textContent=e.cssText,i.appendChild(s)}},pt=F?i=>i:i=>i instanceof CSSStyleSheet?(t=>{let e="";for(let s of t.cssRules)e+=s.cssText;return Et(e)})(i):i;var{is:ae,defineProperty:le,getOwnPropertyDescriptor:ce,getOwnPropertyNames:he,getOwnPropertySymbols:de,getPrototypeOf:pe}=Object,W=globalThis,Mt=W.trustedTypes,ue=Mt?Mt.emptyScript:"",me=W.reactiveElementPolyfillSupport,j=(i,t)=>i,ut={toAttribute(i,t){switch(t){case Boolean:i=i?ue:null;break;case Object:case Array:i=i==null?i:JSON.stringify(i)}return i},fromAttribute(i,t){let e=i;switch(t){case Boolean:e=i!==null;break;case Number:e=i===null?null:Number(i);break;case Object:case Array:try{e=JSON.parse(i)}catch{e=null}}return e}},Pt=(i,t)=>!ae(i,t),Tt={attribute:!0,type:String,converter:ut,reflect:!1,useDefault:!1,hasChanged:Pt};Symbol.metadata??=Symbol("metadata"),W.litPropertyMetadata??=new WeakMap;var x=class extends HTMLElement{static addInitializer(t){this._$Ei(),(this.l??=[]).push(t)}static get observedAttributes(){return this.finalize(),this._$Eh&&[...this._$Eh.keys()]}static createProperty(t,e=Tt){if(e.state&&(e.attribute=!1),this._$Ei(),this.prototype.hasOwnProperty(t)&&((e=Object.create(e)).wrapped=!0),this.elementProperties.set(t,e),!e.noAccessor){let s=Symbol(),r=this.getPropertyDescriptor(t,s,e);r!==void 0&&le(this.prototype,t,r)}}static getPropertyDescriptor(t,e,s){let{get:r,set:n}=ce(this.prototype,t)??{get(){return this[e]},set(o){this[e]=o}};return{get:r,set(o){let a=r?.call(this);n?.call(this,o),this.requestUpdate(t,a,s)},configurable:!0,enumerable:!0}}static getPropertyOptions(t){return this.elementProperties.get(t)??Tt}static _$Ei(){if(this.hasOwnProperty(j("elementProperties")))return;let t=pe(this);t.finalize(),t.l!==void 0&&(this.l=[...t.l]),this.elementProperties=new Map(t.elementProperties)}static finalize(){if(this.hasOwnProperty(j("finalized")))return;if(this.finalized=!0,this._$Ei(),this.hasOwnProperty(j("properties"))){let e=this.properties,s=[...he(e),...de(e)];for(let r of s)this.createProperty(r,e[r])}let t=this[Symbol.metadata];if(t!==null){let e=litPropertyMetadata.get(t);if(e!==void 0)for(let[s,r]of e)this.elementProperties.set(s,r)}this._$Eh=new Map;for(let[e,s]of this.elementProperties){let r=this._$Eu(e,s);r!==void 0&&this._$Eh.set(r,e)}this.elementStyles=this.finalizeStyles(this.styles)}static finalizeStyles(t){let e=[];if(Array.isArray(t)){let s=new Set(t.flat(1/0).reverse());for(let r of s)e.unshift(pt(r))}else t!==void 0&&e.push(pt(t));return e}static _$Eu(t,e){let s=e.attribute;return s===!1?void 0:typeof s=="string"?s:typeof t=="string"?t.toLowerCase():void 0}constructor(){super(),this._$Ep=void 0,this.isUpdatePending=!1,this.hasUpdated=!1,this._$Em=null,this._$Ev()}_$Ev(){this._$ES=new Promise(t=>this.enableUpdating=t),this._$AL=new Map,this._$E_(),this.requestUpdate(),this.constructor.l?.forEach(t=>t(this))}addController(t){(this._$EO??=new Set).add(t),this.renderRoot!==void 0&&this.isConnected&&t.hostConnected?.()}removeController(t){this._$EO?.delete(t)}_$E_(){let t=new Map,e=this.constructor.elementProperties;for(let s of e.keys())this.hasOwnProperty(s)&&(t.set(s,this[s]),delete this[s]);t.size>0&&(this._$Ep=t)}createRenderRoot(){let t=this.shadowRoot??this.attachShadow(this.constructor.shadowRootOptions);return Ct(t,this.constructor.elementStyles),t}connectedCallback(){this.renderRoot??=this.createRenderRoot(),this.enableUpdating(!0),this._$EO?.forEach(t=>t.hostConnected?.())}enableUpdating(t){}disconnectedCallback(){this._$EO?.forEach(t=>t.hostDisconnected?.())}attributeChangedCallback(t,e,s){this._$AK(t,s)}_$ET(t,e){let s=this.constructor.elementProperties.get(t),r=this.constructor._$Eu(t,s);if(r!==void 0&&s.reflect===!0){let n=(s.converter?.toAttribute!==void 0?s.converter:ut).toAttribute(e,s.type);this._$Em=t,n==null?this.removeAttribute(r):this.setAttribute(r,n),this._$Em=null}}_$AK(t,e){let s=this.constructor,r=s._$Eh.get(t);if(r!==void 0&&this._$Em!==r){let n=s.getPropertyOptions(r),o=typeof n.converter=="function"?{fromAttribute:n.converter}:n.converter?.fromAttribute!==void 0?n.converter:ut;this._$Em=r;let a=o.fromAttribute(e,n.type);this[r]=a??this._$Ej?.get(r)??a,this._$Em=null}}requestUpdate(t,e,s,r=!1,n){if(t!==void 0){let o=this.constructor;if(r===!1&&(n=this[t]),s??=o.getPropertyOptions(t),!((s.hasChanged??Pt)(n,e)||s.useDefault&&s.reflect&&n===this._$Ej?.get(t)&&!this.hasAttribute(o._$Eu(t,s))))return;this.C(t,e,s)}this.isUpdatePending===!1&&(this._$ES=this._$EP())}C(t,e,{useDefault:s,reflect:r,wrapped:n},o){s&&!(this._$Ej??=new Map).has(t)&&(this._$Ej.set(t,o??e??this[t]),n!==!0||o!==void 0)||(this._$AL.has(t)||(this.hasUpdated||s||(e=void 0),this._$AL.set(t,e)),r===!0&&this._$Em!==t&&(this._$Eq??=new Set).add(t))}async _$EP(){this.isUpdatePending=!0;try{await this._$ES}catch(e){Promise.reject(e)}let t=this.scheduleUpdate();return t!=null&&await t,!this.isUpdatePending}scheduleUpdate(){return this.performUpdate()}performUpdate(){if(!this.isUpdatePending)return;if(!this.hasUpdated){if(this.renderRoot??=this.createRenderRoot(),this._$Ep){for(let[r,n]of this._$Ep)this[r]=n;this._$Ep=void 0}let s=this.constructor.elementProperties;if(s.size>0)for(let[r,n]of s){let{wrapped:o}=n,a=this[r];o!==!0||this._$AL.has(r)||a===void 0||this.C(r,void 0,n,a)}}let t=!1,e=this._$AL;try{t=this.shouldUpdate(e),t?(this.willUpdate(e),this._$EO?.forEach(s=>s.hostUpdate?.()),this.update(e)):this._$EM()}catch(s){throw t=!1,this._$EM(),s}t&&this._$AE(e)}willUpdate(t){}_$AE(t){this._$EO?.forEach(e=>e.hostUpdated?.()),this.hasUpdated||(this.hasUpdated=!0,this.firstUpdated(t)),this.updated(t)}_$EM(){this._$AL=new Map,this.isUpdatePending=!1}get updateComplete(){return this.getUpdateComplete()}getUpdateComplete(){return this._$ES}shouldUpdate(t){return!0}update(t){this._$Eq&&=this._$Eq.forEach(e=>this._$ET(e,this[e])),this._$EM()}updated(t){}firstUpdated(t){}};x.elementStyles=[],x.shadowRootOptions={mode:"open"},x[j("elementProperties")]=new Map,x[j("finalized")]=new Map,me?.({ReactiveElement:x}),(W.reactiveElementVersions??=[]).push("2.1.2");var ft=globalThis,Rt=i=>i,K=ft.trustedTypes,Ot=K?K.createPolicy("lit-html",{createHTML:i=>i}):void 0,_t="$lit$",S=`lit$${Math.random().toFixed(9).slice(2)}$`,gt="?"+S,fe=`<${gt}>`,P=document,H=()=>P.createComment(""),z=i=>i===null||typeof i!="object"&&typeof i!="function",vt=Array.isArray,Ht=i=>vt(i)||typeof i?.[Symbol.iterator]=="function",mt=`[ 	
\f\r]`,D=/<(?:(!--|\/[^a-zA-Z])|(\/?[a-zA-Z][^>\s]*)|(\/?$))/g,Nt=/-->/g,Ut=/>/g,M=RegExp(`>|${mt}(?:([^\\s"'>=/]+)(${mt}*=${mt}*(?:[^ 	
\f\r"'\`<>=]|("|')|))|$)`,"g"),Lt=/'/g,jt=/"/g,zt=/^(?:script|style|textarea|title)$/i,$t=i=>(t,...e)=>({_$litType$:i,strings:t,values:e}),h=$t(1),b=$t(2),Ne=$t(3),A=Symbol.for("lit-noChange"),d=Symbol.for("lit-nothing"),Dt=new WeakMap,T=P.createTreeWalker(P,129);function It(i,t){if(!vt(i)||!i.hasOwnProperty("raw"))throw Error("invalid template strings array");return Ot!==void 0?Ot.createHTML(t):t}var Bt=(i,t)=>{let e=i.length-1,s=[],r,n=t===2?"<svg>":t===3?"<math>":"",o=D;for(let a=0;a<e;a++){let l=i[a],p,f,c=-1,m=0;for(;m<l.length&&(o.lastIndex=m,f=o.exec(l),f!==null);)m=o.lastIndex,o===D?f[1]==="!--"?o=Nt:f[1]!==void 0?o=Ut:f[2]!==void 0?(zt.test(f[2])&&(r=RegExp("</"+f[2],"g")),o=M):f[3]!==void 0&&(o=M):o===M?f[0]===">"?(o=r??D,c=-1):f[1]===void 0?c=-2:(c=o.lastIndex-f[2].length,p=f[1],o=f[3]===void 0?M:f[3]==='"'?jt:Lt):o===jt||o===Lt?o=M:o===Nt||o===Ut?o=D:(o=M,r=void 0);let u=o===M&&i[a+1].startsWith("/>")?" ":"";n+=o===D?l+fe:c>=0?(s.push(p),l.slice(0,c)+_t+l.slice(c)+S+u):l+S+(c===-2?a:u)}return[It(i,n+(i[e]||"<?>")+(t===2?"</svg>":t===3?"</math>":"")),s]},I=class i{constructor({strings:t,_$litType$:e},s){let r;this.parts=[];let n=0,o=0,a=t.length-1,l=this.parts,[p,f]=Bt(t,e);if(this.el=i.createElement(p,s),T.currentNode=this.el.content,e===2||e===3){let c=this.el.content.firstChild;c.replaceWith(...c.childNodes)}for(;(r=T.nextNode())!==null&&l.length<a;){if(r.nodeType===1){if(r.hasAttributes())for(let c of r.getAttributeNames())if(c.endsWith(_t)){let m=f[o++],u=r.getAttribute(c).split(S),_=/([.?@])?(.*)/.exec(m);l.push({type:1,index:n,name:_[2],strings:u,ctor:_[1]==="."?Y:_[1]==="?"?Z:_[1]==="@"?G:O}),r.removeAttribute(c)}else c.startsWith(S)&&(l.push({type:6,index:n}),r.removeAttribute(c));if(zt.test(r.tagName)){let c=r.textContent.split(S),m=c.length-1;if(m>0){r.textContent=K?K.emptyScript:"";for(let u=0;u<m;u++)r.append(c[u],H()),T.nextNode(),l.push({type:2,index:++n});r.append(c[m],H())}}}else if(r.nodeType===8)if(r.data===gt)l.push({type:2,index:n});else{let c=-1;for(;(c=r.data.indexOf(S,c+1))!==-1;)l.push({type:7,index:n}),c+=S.length-1}n++}}static createElement(t,e){let s=P.createElement("template");return s.innerHTML=t,s}};function R(i,t,e=i,s){if(t===A)return t;let r=s!==void 0?e._$Co?.[s]:e._$Cl,n=z(t)?void 0:t._$litDirective$;return r?.constructor!==n&&(r?._$AO?.(!1),n===void 0?r=void 0:(r=new n(i),r._$AT(i,e,s)),s!==void 0?(e._$Co??=[])[s]=r:e._$Cl=r),r!==void 0&&(t=R(i,r._$AS(i,t.values),r,s)),t}var J=class{constructor(t,e){this._$AV=[],this._$AN=void 0,this._$AD=t,this._$AM=e}get parentNode(){return this._$AM.parentNode}get _$AU(){return this._$AM._$AU}u(t){let{el:{content:e},parts:s}=this._$AD,r=(t?.creationScope??P).importNode(e,!0);T.currentNode=r;let n=T.nextNode(),o=0,a=0,l=s[0];for(;l!==void 0;){if(o===l.index){let p;l.type===2?p=new N(n,n.nextSibling,this,t):l.type===1?p=new l.ctor(n,l.name,l.strings,this,t):l.type===6&&(p=new X(n,this,t)),this._$AV.push(p),l=s[++a]}o!==l?.index&&(n=T.nextNode(),o++)}return T.currentNode=P,r}p(t){let e=0;for(let s of this._$AV)s!==void 0&&(s.strings!==void 0?(s._$AI(t,s,e),e+=s.strings.length-2):s._$AI(t[e])),e++}},N=class i{get _$AU(){return this._$AM?._$AU??this._$Cv}constructor(t,e,s,r){this.type=2,this._$AH=d,this._$AN=void 0,this._$AA=t,this._$AB=e,this._$AM=s,this.options=r,this._$Cv=r?.isConnected??!0}get parentNode(){let t=this._$AA.parentNode,e=this._$AM;return e!==void 0&&t?.nodeType===11&&(t=e.parentNode),t}get startNode(){return this._$AA}get endNode(){return this._$AB}_$AI(t,e=this){t=R(this,t,e),z(t)?t===d||t==null||t===""?(this._$AH!==d&&this._$AR(),this._$AH=d):t!==this._$AH&&t!==A&&this._(t):t._$litType$!==void 0?this.$(t):t.nodeType!==void 0?this.T(t):Ht(t)?this.k(t):this._(t)}O(t){return this._$AA.parentNode.insertBefore(t,this._$AB)}T(t){this._$AH!==t&&(this._$AR(),this._$AH=this.O(t))}_(t){this._$AH!==d&&z(this._$AH)?this._$AA.nextSibling.data=t:this.T(P.createTextNode(t)),this._$AH=t}$(t){let{values:e,_$litType$:s}=t,r=typeof s=="number"?this._$AC(t):(s.el===void 0&&(s.el=I.createElement(It(s.h,s.h[0]),this.options)),s);if(this._$AH?._$AD===r)this._$AH.p(e);else{let n=new J(r,this),o=n.u(this.options);n.p(e),this.T(o),this._$AH=n}}_$AC(t){let e=Dt.get(t.strings);return e===void 0&&Dt.set(t.strings,e=new I(t)),e}k(t){vt(this._$AH)||(this._$AH=[],this._$AR());let e=this._$AH,s,r=0;for(let n of t)r===e.length?e.push(s=new i(this.O(H()),this.O(H()),this,this.options)):s=e[r],s._$AI(n),r++;r<e.length&&(this._$AR(s&&s._$AB.nextSibling,r),e.length=r)}_$AR(t=this._$AA.nextSibling,e){for(this._$AP?.(!1,!0,e);t!==this._$AB;){let s=Rt(t).nextSibling;Rt(t).remove(),t=s}}setConnected(t){this._$AM===void 0&&(this._$Cv=t,this._$AP?.(t))}},O=class{get tagName(){return this.element.tagName}get _$AU(){return this._$AM._$AU}constructor(t,e,s,r,n){this.type=1,this._$AH=d,this._$AN=void 0,this.element=t,this.name=e,this._$AM=r,this.options=n,s.length>2||s[0]!==""||s[1]!==""?(this._$AH=Array(s.length-1).fill(new String),this.strings=s):this._$AH=d}_$AI(t,e=this,s,r){let n=this.strings,o=!1;if(n===void 0)t=R(this,t,e,0),o=!z(t)||t!==this._$AH&&t!==A,o&&(this._$AH=t);else{let a=t,l,p;for(t=n[0],l=0;l<n.length-1;l++)p=R(this,a[s+l],e,l),p===A&&(p=this._$AH[l]),o||=!z(p)||p!==this._$AH[l],p===d?t=d:t!==d&&(t+=(p??"")+n[l+1]),this._$AH[l]=p}o&&!r&&this.j(t)}j(t){t===d?this.element.removeAttribute(this.name):this.element.setAttribute(this.name,t??"")}},Y=class extends O{constructor(){super(...arguments),this.type=3}j(t){this.element[this.name]=t===d?void 0:t}},Z=class extends O{constructor(){super(...arguments),this.type=4}j(t){this.element.toggleAttribute(this.name,!!t&&t!==d)}},G=class extends O{constructor(t,e,s,r,n){super(t,e,s,r,n),this.type=5}_$AI(t,e=this){if((t=R(this,t,e,0)??d)===A)return;let s=this._$AH,r=t===d&&s!==d||t.capture!==s.capture||t.once!==s.once||t.passive!==s.passive,n=t!==d&&(s===d||r);r&&this.element.removeEventListener(this.name,this,s),n&&this.element.addEventListener(this.name,this,t),this._$AH=t}handleEvent(t){typeof this._$AH=="function"?this._$AH.call(this.options?.host??this.element,t):this._$AH.handleEvent(t)}},X=class{constructor(t,e,s){this.element=t,this.type=6,this._$AN=void 0,this._$AM=e,this.options=s}get _$AU(){return this._$AM._$AU}_$AI(t){R(this,t)}},Vt={M:_t,P:S,A:gt,C:1,L:Bt,R:J,D:Ht,V:R,I:N,H:O,N:Z,U:G,B:Y,F:X},_e=ft.litHtmlPolyfillSupport;_e?.(I,N),(ft.litHtmlVersions??=[]).push("3.3.3");var qt=(i,t,e)=>{let s=e?.renderBefore??t,r=s._$litPart$;if(r===void 0){let n=e?.renderBefore??null;s._$litPart$=r=new N(t.insertBefore(H(),n),n,void 0,e??{})}return r._$AI(i),r};var bt=globalThis,g=class extends x{constructor(){super(...arguments),this.renderOptions={host:this},this._$Do=void 0}createRenderRoot(){let t=super.createRenderRoot();return this.renderOptions.renderBefore??=t.firstChild,t}update(t){let e=this.render();this.hasUpdated||(this.renderOptions.isConnected=this.isConnected),super.update(t),this._$Do=qt(e,this.renderRoot,this.renderOptions)}connectedCallback(){super.connectedCallback(),this._$Do?.setConnected(!0)}disconnectedCallback(){super.disconnectedCallback(),this._$Do?.setConnected(!1)}render(){return A}};g._$litElement$=!0,g.finalized=!0,bt.litElementHydrateSupport?.({LitElement:g});var ge=bt.litElementPolyfillSupport;ge?.({LitElement:g});(bt.litElementVersions??=[]).push("4.2.2");var B=class{#t="";#s=[];#e="";#i=!1;lastEventId="";constructor({onEvent:t=()=>{},onRetry:e=()=>{},onComment:s=()=>{}}={}){this.onEvent=t,this.onRetry=e,this.onComment=s}push(t){if(!t)return;this.#i&&t[0]===`
`&&(t=t.slice(1));let e=this.#t+t,s=/\r\n?|\n/g,r=0;for(let n=s.exec(e);n;n=s.exec(e))this.#r(e.slice(r,n.index)),r=s.lastIndex;this.#i=r>0&&r===e.length&&e.endsWith("\r"),this.#t=e.slice(r)}#r(t){if(t==="")return this.#n();if(t[0]===":")return this.onComment(t.slice(1).trimStart());let e=t.indexOf(":"),s=e<0?t:t.slice(0,e),r=e<0?"":t.slice(e+1);switch(r[0]===" "&&(r=r.slice(1)),s){case"data":this.#s.push(r);break;case"event":this.#e=r;break;case"id":r.includes("\0")||(this.lastEventId=r);break;case"retry":/^\d+$/.test(r)&&this.onRetry(Number(r));break;default:}}#n(){let t=this.#s,e=this.#e||"message";this.#s=[],this.#e="",t.length!==0&&this.onEvent({id:this.lastEventId,type:e,data:t.join(`
`)})}};function yt(i){return String(i??"").split(/[\s,]+/).filter(Boolean)}var ve=new URL("../",import.meta.url).href;function V(i,t,e=[]){let s=new URL(i||ve,globalThis.location?.href);s.pathname.endsWith("/")||(s.pathname+="/");let r=new URL(t.replace(/^\//,""),s);for(let[n,o]of e)r.searchParams.append(n,o);return r.href}function Ft(i,t,e,s=Math.random){let r=Math.min(e,t*2**Math.min(i,16));return Math.round(r*(.5+s()/2))}function wt(i){try{return JSON.parse(i)}catch{return i}}var $e=new Intl.RelativeTimeFormat("en",{numeric:"auto",style:"long"}),be=[["year",365*24*3600],["month",720*3600],["week",168*3600],["day",24*3600],["hour",3600],["minute",60],["second",1]];function Wt(i,t=Date.now()){let e=typeof i=="number"?i:Date.parse(i);if(!Number.isFinite(e))return"";let s=Math.round((e-t)/1e3);if(Math.abs(s)<10)return"just now";for(let[r,n]of be)if(Math.abs(s)>=n||r==="second")return $e.format(Math.trunc(s/n),r);return""}function Kt(i){let t=new Map;for(let e of String(i).split(`
`)){if(e===""||e.startsWith("#"))continue;let s=/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(e);if(!s)continue;let r=Number(s[3]);Number.isFinite(r)&&t.set(s[1],(t.get(s[1])??0)+r)}return t}function xt(i,t,e){return i==null||t==null||!(e>0)||t<i?null:(t-i)/e}function Jt(i){return i==null?"\u2014":i>=1e4?`${(i/1e3).toFixed(0)}k`:i>=1e3?`${(i/1e3).toFixed(1)}k`:i>=10?i.toFixed(0):i.toFixed(1)}var ye=3e4,we=new Set(["herald-event","herald-state"]),Q=class extends g{static properties={url:{type:String},topics:{type:String},snapshot:{type:Boolean},envelope:{type:Boolean},token:{type:String},lastEventId:{attribute:"last-event-id",noAccessor:!0},paused:{type:Boolean,reflect:!0},staleAfter:{type:Number,attribute:"stale-after"},state:{type:String,reflect:!0}};static styles=$`
    :host {
      display: contents;
    }
  `;#t="";#s=!1;#e=null;#i=null;#r=0;#n=0;#o=0;#f=2e3;#h=!1;#p=0;#_=0;#a=0;#c=!1;#l=0;constructor(){super(),this.url="",this.topics="",this.snapshot=!1,this.envelope=!1,this.token="",this.paused=!1,this.staleAfter=10,this.state="idle",this.error=null}get lastEventId(){return this.#t}set lastEventId(t){this.#t=t??"",this.#s=!0}get disconnectedSince(){return this.#a||null}reconnect(){this.#u(),this.#o=0,this.#m()}render(){return h`<slot></slot>`}connectedCallback(){super.connectedCallback(),this.#c=document.visibilityState==="hidden",document.addEventListener("visibilitychange",this.#g),window.addEventListener("online",this.#v),this.hasUpdated&&this.#m()}disconnectedCallback(){super.disconnectedCallback(),document.removeEventListener("visibilitychange",this.#g),window.removeEventListener("online",this.#v),this.#u(),this.#d("idle")}updated(t){let e=["url","topics","snapshot","envelope"].some(s=>t.has(s));e?(this.#s||(this.#t=""),this.#u(),this.#o=0):t.has("token")&&(this.#u(),this.#o=0),this.#s=!1,(e||t.has("token")||t.has("paused"))&&this.#m()}#g=()=>{let t=document.visibilityState==="hidden";t!==this.#c&&(this.#c=t,t&&this.#u(),this.#o=0,this.#m())};#v=()=>{this.#r&&(clearTimeout(this.#r),this.#r=0,this.#o=0,this.#$())};#y(){return this.isConnected&&!this.paused&&!this.#c&&yt(this.topics).length>0}#m(){if(!this.#y()){this.#u(),this.#d(this.isConnected&&(this.paused||this.#c)?"paused":"idle");return}!this.#e&&!this.#r&&this.#$()}#u(){this.#l++,this.#e?.abort(),this.#e=null,clearTimeout(this.#r),this.#r=0,clearTimeout(this.#n),this.#n=0,this.#a=0}#w(){let t=yt(this.topics).map(e=>["topic",e]);return this.#t&&t.push(["lastEventID",this.#t]),this.snapshot&&t.push(["snapshot","true"]),this.envelope&&t.push(["envelope","true"]),this.token&&t.push(["access_token",this.token]),V(this.url,"events",t)}async#$(){let t=++this.#l,e=new AbortController;this.#e=e,this.#a||this.#d("connecting");let s;try{s=await fetch(this.#w(),{headers:{accept:"text/event-stream"},cache:"no-store",signal:e.signal})}catch{t===this.#l&&this.#b();return}if(t!==this.#l)return;let r=s.headers.get("content-type")??"";if(!s.ok||!r.startsWith("text/event-stream")){await this.#x(s,t);return}this.#o=0,this.#a=0,this.#_=Date.now(),clearTimeout(this.#n),this.#d("live"),this.#i=new B({onEvent:n=>t===this.#l&&this.#S(n),onRetry:n=>this.#f=n}),this.#i.lastEventId=this.#t;try{let n=s.body.pipeThrough(new TextDecoderStream).getReader();for(;;){let{value:o,done:a}=await n.read();if(a||t!==this.#l)break;this.#i.push(o)}}catch{}t===this.#l&&this.#b()}async#x(t,e){let s=null;if(t.ok?this.#e?.abort():s=await t.json().catch(()=>null),e!==this.#l)return;let r=t.status;if(r===429||r>=500){let n=Number(t.headers.get("retry-after"))*1e3||0;this.#b(n);return}this.#e=null,this.#a||=Date.now(),this.error={status:r,error:s?.error??`http_${r}`,detail:s?.detail??(t.ok?"the answer was not an event stream":t.statusText)},this.#d("error",!0)}#b(t=0){if(this.#e=null,!this.#y())return this.#m();(!this.#h||Date.now()-this.#_>1e4)&&(this.#p=0),this.#h&&this.#p++;let e=this.#h&&this.#p===1?Math.random()*250:Math.max(t,Ft(this.#o++,this.#f,ye));if(this.#h=!1,!this.#a){this.#a=Date.now();let s=Math.max(0,this.staleAfter*1e3);this.#n=setTimeout(()=>this.#d("stale"),s)}this.state!=="stale"&&this.#d("reconnecting"),this.#r=setTimeout(()=>{this.#r=0,this.#$()},e)}#S({id:t,type:e,data:s}){if(e.startsWith("herald."))return this.#A(e,s);this.#p=0,this.#t=t;let r={id:t,type:e,data:wt(s),text:s};if(this.envelope&&r.data&&typeof r.data=="object"&&"topic"in r.data){let{topic:n,key:o=null,tombstone:a=!1,data:l}=r.data;r={id:t,type:e,topic:n,key:o,tombstone:a,data:l,text:s}}this.dispatchEvent(new CustomEvent("herald-event",{detail:r,bubbles:!0})),we.has(e)||this.dispatchEvent(new CustomEvent(e,{detail:r,bubbles:!0}))}#A(t,e){t==="herald.reset"?(this.#t="",this.#i.lastEventId=""):t==="herald.shutdown"&&(this.#h=!0),this.dispatchEvent(new CustomEvent(t,{detail:wt(e),bubbles:!0}))}#d(t,e=!1){if(t===this.state&&!e)return;let s=this.state;this.state=t,t!=="error"&&(this.error=null);let r={state:t,previous:s,since:this.#a||null,error:this.error};this.dispatchEvent(new CustomEvent("herald-state",{detail:r,bubbles:!0}))}};var Yt={ATTRIBUTE:1,CHILD:2,PROPERTY:3,BOOLEAN_ATTRIBUTE:4,EVENT:5,ELEMENT:6},Zt=i=>(...t)=>({_$litDirective$:i,values:t}),tt=class{constructor(t){}get _$AU(){return this._$AM._$AU}_$AT(t,e,s){this._$Ct=t,this._$AM=e,this._$Ci=s}_$AS(t,e){return this.update(t,e)}update(t,e){return this.render(...e)}};var{I:xe}=Vt,Gt=i=>i;var Xt=()=>document.createComment(""),U=(i,t,e)=>{let s=i._$AA.parentNode,r=t===void 0?i._$AB:t._$AA;if(e===void 0){let n=s.insertBefore(Xt(),r),o=s.insertBefore(Xt(),r);e=new xe(n,o,i,i.options)}else{let n=e._$AB.nextSibling,o=e._$AM,a=o!==i;if(a){let l;e._$AQ?.(i),e._$AM=i,e._$AP!==void 0&&(l=i._$AU)!==o._$AU&&e._$AP(l)}if(n!==r||a){let l=e._$AA;for(;l!==n;){let p=Gt(l).nextSibling;Gt(s).insertBefore(l,r),l=p}}}return e},E=(i,t,e=i)=>(i._$AI(t,e),i),Se={},Qt=(i,t=Se)=>i._$AH=t,te=i=>i._$AH,et=i=>{i._$AR(),i._$AA.remove()};var ee=(i,t,e)=>{let s=new Map;for(let r=t;r<=e;r++)s.set(i[r],r);return s},st=Zt(class extends tt{constructor(i){if(super(i),i.type!==Yt.CHILD)throw Error("repeat() can only be used in text expressions")}dt(i,t,e){let s;e===void 0?e=t:t!==void 0&&(s=t);let r=[],n=[],o=0;for(let a of i)r[o]=s?s(a,o):o,n[o]=e(a,o),o++;return{values:n,keys:r}}render(i,t,e){return this.dt(i,t,e).values}update(i,[t,e,s]){let r=te(i),{values:n,keys:o}=this.dt(t,e,s);if(!Array.isArray(r))return this.ut=o,n;let a=this.ut??=[],l=[],p,f,c=0,m=r.length-1,u=0,_=n.length-1;for(;c<=m&&u<=_;)if(r[c]===null)c++;else if(r[m]===null)m--;else if(a[c]===o[u])l[u]=E(r[c],n[u]),c++,u++;else if(a[m]===o[_])l[_]=E(r[m],n[_]),m--,_--;else if(a[c]===o[_])l[_]=E(r[c],n[_]),U(i,l[_+1],r[c]),c++,_--;else if(a[m]===o[u])l[u]=E(r[m],n[u]),U(i,r[c],r[m]),m--,u++;else if(p===void 0&&(p=ee(o,u,_),f=ee(a,c,m)),p.has(a[c]))if(p.has(a[m])){let w=f.get(o[u]),ht=w!==void 0?r[w]:null;if(ht===null){let At=U(i,r[c]);E(At,n[u]),l[u]=At}else l[u]=E(ht,n[u]),U(i,r[c],ht),r[w]=null;u++}else et(r[m]),m--;else et(r[c]),c++;for(;u<=_;){let w=U(i,l[_+1]);E(w,n[u]),l[u++]=w}for(;c<=m;){let w=r[c++];w!==null&&et(w)}return this.ut=o,Qt(i,l),A}});var C=$`
  :host {
    --_surface: var(--herald-surface, #ffffff);
    --_sunken: var(--herald-sunken, #f3f4f6);
    --_text: var(--herald-text, #1b1f24);
    --_muted: var(--herald-muted, #59636e);
    --_border: var(--herald-border, #d5dae0);
    --_ok: var(--herald-ok, #1a7f37);
    --_warn: var(--herald-warn, #9a6700);
    --_bad: var(--herald-bad, #cf222e);
    --_info: var(--herald-info, #0969da);
    --_accent: var(--herald-accent, #5a32c8);
    --_radius: var(--herald-radius, 10px);
    --_mono: var(--herald-mono, ui-monospace, 'SFMono-Regular', 'DejaVu Sans Mono', Menlo, monospace);
    --herald-icon-ink: var(--_surface);
    color: var(--_text);
    font-family: var(--herald-font, system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif);
    font-size: 0.9375rem;
    line-height: 1.45;
  }
  @media (prefers-color-scheme: dark) {
    :host {
      --_surface: var(--herald-surface, #161b22);
      --_sunken: var(--herald-sunken, #0d1117);
      --_text: var(--herald-text, #e6edf3);
      --_muted: var(--herald-muted, #9ba4ae);
      --_border: var(--herald-border, #30363d);
      --_ok: var(--herald-ok, #3fb950);
      --_warn: var(--herald-warn, #d29922);
      --_bad: var(--herald-bad, #f85149);
      --_info: var(--herald-info, #58a6ff);
      --_accent: var(--herald-accent, #a48bff);
    }
  }
  *,
  *::before,
  *::after {
    box-sizing: border-box;
  }
  .icon {
    flex: none;
    width: 1em;
    height: 1em;
    vertical-align: -0.15em;
  }
  .spin {
    transform-origin: 8px 8px;
    animation: spin 1.1s linear infinite;
  }
  @keyframes spin {
    to {
      transform: rotate(360deg);
    }
  }
  @media (prefers-reduced-motion: reduce) {
    .spin {
      animation: none;
    }
  }
  .tone-ok { --_tone: var(--_ok); }
  .tone-warn { --_tone: var(--_warn); }
  .tone-bad { --_tone: var(--_bad); }
  .tone-info { --_tone: var(--_info); }
  .tone-muted { --_tone: var(--_muted); }
  .badge {
    display: inline-flex;
    align-items: center;
    gap: 0.35em;
    padding: 0.1em 0.55em 0.1em 0.4em;
    border-radius: 999px;
    font-size: 0.8125rem;
    font-weight: 600;
    white-space: nowrap;
    color: var(--_tone, var(--_muted));
    background: color-mix(in srgb, var(--_tone, var(--_muted)) 12%, transparent);
    border: 1px solid color-mix(in srgb, var(--_tone, var(--_muted)) 35%, transparent);
  }
  button,
  input,
  select {
    font: inherit;
    color: inherit;
  }
  input,
  select {
    min-height: 2.25rem;
    padding: 0.3rem 0.55rem;
    border: 1px solid var(--_border);
    border-radius: 8px;
    background: var(--_surface);
    max-width: 100%;
  }
  button {
    min-height: 2.25rem;
    padding: 0.3rem 0.85rem;
    border: 1px solid var(--_border);
    border-radius: 8px;
    background: var(--_sunken);
    cursor: pointer;
    font-weight: 600;
  }
  button.primary {
    background: var(--_accent);
    border-color: var(--_accent);
    color: var(--_surface);
  }
  button:hover {
    filter: brightness(0.96);
  }
  :focus-visible {
    outline: 3px solid color-mix(in srgb, var(--_accent) 70%, transparent);
    outline-offset: 2px;
  }
  .visually-hidden {
    position: absolute;
    width: 1px;
    height: 1px;
    overflow: hidden;
    clip-path: inset(50%);
    white-space: nowrap;
  }
  /* The connection pill every component shows. */
  .conn {
    display: inline-flex;
    align-items: center;
    gap: 0.45em;
    font-size: 0.8125rem;
    font-weight: 600;
    color: var(--_tone);
  }
  .conn .dot {
    width: 0.65em;
    height: 0.65em;
    border-radius: 50%;
    background: var(--_tone);
  }
  .conn.tone-ok .dot {
    box-shadow: 0 0 0 0.2em color-mix(in srgb, var(--_ok) 25%, transparent);
  }
  .conn.tone-warn .dot {
    background: transparent;
    border: 2px solid var(--_tone);
  }
  .conn.tone-bad .dot {
    border-radius: 2px;
  }
`;function rt(i,{since:t=null,error:e=null,now:s=Date.now()}={}){let r=t?` for ${Math.max(0,Math.round((s-t)/1e3))} s`:"";switch(i){case"live":return{tone:"ok",text:"Live"};case"connecting":return{tone:"info",text:"Connecting\u2026"};case"reconnecting":return{tone:"warn",text:"Reconnecting\u2026"};case"stale":return{tone:"bad",text:`Stale: disconnected${r}`};case"paused":return{tone:"muted",text:"Paused"};case"error":return{tone:"bad",text:`Refused: ${e?.status??""} ${e?.detail??""}`.trim()};default:return{tone:"muted",text:"Not subscribed"}}}var k=i=>b`<svg class="icon" viewBox="0 0 16 16" width="16" height="16"
  aria-hidden="true" focusable="false">${i}</svg>`,v={check:k(b`<circle cx="8" cy="8" r="7" fill="currentColor"/>
    <path d="M4.5 8.2l2.3 2.3 4.7-4.9" fill="none" stroke="var(--herald-icon-ink, #fff)"
      stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/>`),heart:k(b`<path d="M8 14.2L2.2 8.6A3.4 3.4 0 0 1 8 3.9a3.4 3.4 0 0 1 5.8 4.7z"
    fill="currentColor"/>`),cross:k(b`<path d="M8 1.2l6.8 12.6H1.2z" fill="currentColor" stroke="currentColor"
      stroke-width="1.2" stroke-linejoin="round"/>
    <path d="M8 6v3.6" stroke="var(--herald-icon-ink, #fff)" stroke-width="1.8"
      stroke-linecap="round"/>
    <circle cx="8" cy="11.8" r="1" fill="var(--herald-icon-ink, #fff)"/>`),spinner:k(b`<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="2.2"
      opacity="0.3"/>
    <path class="spin" d="M8 2a6 6 0 0 1 6 6" fill="none" stroke="currentColor" stroke-width="2.2"
      stroke-linecap="round"/>`),pause:k(b`<rect x="3" y="2.5" width="3.6" height="11" rx="1" fill="currentColor"/>
    <rect x="9.4" y="2.5" width="3.6" height="11" rx="1" fill="currentColor"/>`),missing:k(b`<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="2"
    stroke-dasharray="3 2.3"/>`),unknown:k(b`<circle cx="8" cy="8" r="7" fill="currentColor"/>
    <path d="M6 6.2a2 2 0 1 1 2.8 1.8c-.6.3-.8.7-.8 1.3v.3" fill="none"
      stroke="var(--herald-icon-ink, #fff)" stroke-width="1.6" stroke-linecap="round"/>
    <circle cx="8" cy="11.8" r="0.95" fill="var(--herald-icon-ink, #fff)"/>`),outOfSync:k(b`<circle cx="8" cy="8" r="7" fill="currentColor"/>
    <path d="M8 11.6V4.8M5.2 7.4L8 4.6l2.8 2.8" fill="none" stroke="var(--herald-icon-ink, #fff)"
      stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/>`),stop:k(b`<rect x="2.5" y="2.5" width="11" height="11" rx="2" fill="currentColor"/>
    <path d="M5.6 5.6l4.8 4.8M10.4 5.6l-4.8 4.8" stroke="var(--herald-icon-ink, #fff)"
      stroke-width="1.7" stroke-linecap="round"/>`)},se={Healthy:{tone:"ok",icon:v.heart,rank:5},Progressing:{tone:"info",icon:v.spinner,rank:2},Degraded:{tone:"bad",icon:v.cross,rank:0},Suspended:{tone:"muted",icon:v.pause,rank:3},Missing:{tone:"warn",icon:v.missing,rank:1},Unknown:{tone:"muted",icon:v.unknown,rank:4}},re={Synced:{tone:"ok",icon:v.check,label:"Synced"},OutOfSync:{tone:"warn",icon:v.outOfSync,label:"Out of sync"},Unknown:{tone:"muted",icon:v.unknown,label:"Sync unknown"}},Ae={Running:{tone:"info",icon:v.spinner},Terminating:{tone:"warn",icon:v.stop},Failed:{tone:"bad",icon:v.cross},Error:{tone:"bad",icon:v.cross},Succeeded:{tone:"ok",icon:v.check}};function it(i){let t=se[i];return t?{...t,label:i}:{...se.Unknown,label:i||"Unknown"}}function ie(i){return re[i]??{...re.Unknown,label:i||"Sync unknown"}}function ne(i){return i?{tone:"muted",icon:v.unknown,...Ae[i],label:i}:null}var St={name:{label:"Name",compare:(i,t)=>y(i.name,t.name)||y(i.namespace,t.namespace)},namespace:{label:"Namespace",compare:(i,t)=>y(i.namespace,t.namespace)||y(i.name,t.name)},project:{label:"Project",compare:(i,t)=>y(i.project,t.project)||y(i.name,t.name)},health:{label:"Health (worst first)",compare:(i,t)=>it(i.healthStatus).rank-it(t.healthStatus).rank||y(i.name,t.name)},lastSync:{label:"Last sync (newest first)",compare:(i,t)=>(Date.parse(t.lastSync)||0)-(Date.parse(i.lastSync)||0)||y(i.name,t.name)}};function y(i,t){return String(i??"").localeCompare(String(t??""),void 0,{numeric:!0})}function ke(i,t,e){let s=e&&typeof e=="object"&&!Array.isArray(e)?e:{},r=a=>a==null?"":String(a),[n,o]=i.includes("/")?i.split("/",2):["",i];return{key:i,topic:t,name:r(s.name)||o,namespace:r(s.namespace)||n,project:r(s.project),syncStatus:r(s.syncStatus),healthStatus:r(s.healthStatus),revision:r(s.revision),operationPhase:r(s.operationPhase),message:r(s.message),lastSync:r(s.lastSync),demo:s.demo===!0}}var nt=class extends g{static properties={url:{type:String},topics:{type:String},token:{type:String},staleAfter:{type:Number,attribute:"stale-after"},_query:{state:!0},_project:{state:!0},_namespace:{state:!0},_sort:{state:!0},_conn:{state:!0},_loaded:{state:!0},_now:{state:!0}};#t=new Map;#s=new Map;#e=0;#i=!1;#r=new Set;#n=0;constructor(){super(),this.url="",this.topics="argocd/applications/**",this.token="",this.staleAfter=10,this._query="",this._project="",this._namespace="",this._sort="name",this._conn={state:"idle"},this._loaded=!1,this._now=Date.now()}get applications(){return[...this.#t.values()]}connectedCallback(){super.connectedCallback(),this.#o()}disconnectedCallback(){super.disconnectedCallback(),clearTimeout(this.#n)}#o=()=>{this._now=Date.now();let t=this._conn.state!=="live";this.#n=setTimeout(this.#o,t?1e3:15e3)};willUpdate(t){(t.has("url")||t.has("topics"))&&(this.#t.clear(),this.#s.clear(),this._loaded=!1)}#f(t){let{key:e,topic:s,tombstone:r,type:n,data:o}=t.detail,a=e??s;a!=null&&(r||n.endsWith(".deleted")?(this.#t.delete(a),this.#s.delete(a)):(this.#t.set(a,ke(a,s,o)),this.#s.set(a,this.#e),this._loaded&&this.#r.add(a)),this.requestUpdate())}#h(){this.#e++,this.#i=!0}#p(){if(this.#i){for(let[t,e]of this.#s)e<this.#e&&(this.#s.delete(t),this.#t.delete(t));this.#i=!1}this._loaded=!0}#_(t){let e=this._conn.state==="live";this._conn=t.detail,e!==(t.detail.state==="live")&&(clearTimeout(this.#n),this.#o())}#a(){let t=this._query.trim().toLowerCase();return[...this.#t.values()].filter(s=>(!this._project||s.project===this._project)&&(!this._namespace||s.namespace===this._namespace)&&(!t||[s.name,s.namespace,s.project].some(r=>r.toLowerCase().includes(t)))).sort((St[this._sort]??St.name).compare)}render(){let t=[...this.#t.values()],e=this.#a(),s=[...new Set(t.map(a=>a.project).filter(Boolean))].sort(y),r=[...new Set(t.map(a=>a.namespace).filter(Boolean))].sort(y),n=rt(this._conn.state,{...this._conn,now:this._now}),o=["stale","error"].includes(this._conn.state);return h`
      <herald-stream
        .url=${this.url}
        .topics=${this.topics}
        .token=${this.token}
        .staleAfter=${this.staleAfter}
        snapshot
        envelope
        @herald-event=${this.#f}
        @herald-state=${this.#_}
        @herald.reset=${this.#h}
        @herald.synced=${this.#p}
      ></herald-stream>
      <div class="toolbar">
        <div class="field grow">
          <label for="filter">Filter</label>
          <input
            id="filter"
            type="search"
            placeholder="Name, namespace or project"
            .value=${this._query}
            @input=${a=>this._query=a.target.value}
          />
        </div>
        ${this.#c("Project",this._project,s,a=>this._project=a)}
        ${this.#c("Namespace",this._namespace,r,a=>this._namespace=a)}
        <div class="field">
          <label for="sort">Sort by</label>
          <select id="sort" @change=${a=>this._sort=a.target.value}>
            ${Object.entries(St).map(([a,{label:l}])=>h`<option value=${a} ?selected=${a===this._sort}>${l}</option>`)}
          </select>
        </div>
      </div>
      <div class="statusbar">
        <span class="conn tone-${n.tone}" role="status" title=${this._conn.error?.detail??""}>
          <span class="dot" aria-hidden="true"></span>${n.text}
        </span>
        ${this.#l(t,e)}
      </div>
      ${t.some(a=>a.demo)?h`<p class="banner demo" role="note">
            <strong>Demo data.</strong> Cards marked “Simulated” come from
            <code>herald serve --demo</code>, not from a cluster.
          </p>`:d}
      ${o&&t.length?h`<p class="banner">
            Not connected to the hub: the cards show the last state received and may be out of date.
          </p>`:d}
      ${e.length?h`<ul class="cards ${o?"stale":""}" aria-label="Applications">
            ${st(e,a=>a.key,a=>h`<li>${this.#v(a)}</li>`)}
          </ul>`:h`<p class="empty">${this.#g(t)}</p>`}
    `}#c(t,e,s,r){let n=t.toLowerCase();return h`<div class="field">
      <label for=${n}>${t}</label>
      <select id=${n} @change=${o=>r(o.target.value)}>
        <option value="" ?selected=${!e}>All</option>
        ${s.map(o=>h`<option ?selected=${o===e}>${o}</option>`)}
      </select>
    </div>`}#l(t,e){if(!t.length)return d;let s=l=>t.filter(l).length,r=s(l=>l.healthStatus==="Degraded"||l.healthStatus==="Missing"),n=s(l=>l.healthStatus==="Progressing"),o=s(l=>l.syncStatus==="OutOfSync"),a=e.length===t.length?`${t.length}`:`${e.length} of ${t.length}`;return h`<span class="summary">
      <span>${a} application${t.length===1?"":"s"}</span>
      ${r?h`<span class="tone-bad">${r} unhealthy</span>`:d}
      ${n?h`<span class="tone-info">${n} progressing</span>`:d}
      ${o?h`<span class="tone-warn">${o} out of sync</span>`:d}
    </span>`}#g(t){return t.length?"No application matches the filter.":this._loaded?`No applications on ${this.topics} yet.`:this._conn.state==="live"?"Loading applications\u2026":"Waiting for the hub\u2026"}#v(t){let e=it(t.healthStatus),s=ie(t.syncStatus),r=ne(t.operationPhase),n=/^[0-9a-f]{12,}$/i.test(t.revision)?t.revision.slice(0,7):t.revision,o=Date.parse(t.lastSync);return h`<article
      class="card tone-${e.tone}"
      tabindex="0"
      data-key=${t.key}
      aria-label="${t.name} in ${t.namespace||"no namespace"}: ${e.label}, ${s.label}"
    >
      <header>
        <h3>${t.name}</h3>
        <span class="badge tone-${e.tone}" data-health=${e.label} title="Health"
          >${e.icon}<span class="visually-hidden">Health: </span>${e.label}</span
        >
      </header>
      <p class="where">
        <span title="Namespace">${t.namespace||"\u2014"}</span>
        ${t.project?h`<span aria-hidden="true">·</span><span>project ${t.project}</span>`:d}
      </p>
      <div class="badges">
        <span class="badge tone-${s.tone}" data-sync=${t.syncStatus} title="Sync status"
          >${s.icon}<span class="visually-hidden">Sync: </span>${s.label}</span
        >
        ${t.demo?h`<span class="badge tone-info" data-demo title="Simulated by herald serve --demo">Simulated</span>`:d}
        ${r?h`<span class="badge tone-${r.tone}" data-operation=${r.label} title="Last operation"
              >${r.icon}<span class="visually-hidden">Last operation: </span>${r.label}</span
            >`:d}
      </div>
      <dl>
        <div>
          <dt>Revision</dt>
          <dd><code title=${t.revision}>${n||"\u2014"}</code></dd>
        </div>
        <div>
          <dt>Last sync</dt>
          <dd>
            ${Number.isFinite(o)?h`<time datetime=${t.lastSync} title=${new Date(o).toLocaleString()}
                  >${Wt(o,this._now)}</time
                >`:"never"}
          </dd>
        </div>
      </dl>
      ${t.message?h`<p class="message" title=${t.message}>${t.message}</p>`:d}
    </article>`}updated(){if(!this.#r.size)return;let t=matchMedia("(prefers-reduced-motion: reduce)").matches;for(let e of this.#r){let s=this.renderRoot.querySelector(`[data-key="${CSS.escape(e)}"]`);s&&!t&&s.animate([{boxShadow:"0 0 0 3px color-mix(in srgb, var(--_accent) 55%, transparent)"},{boxShadow:"none"}],{duration:1400,easing:"ease-out"})}this.#r.clear()}static styles=[C,$`
      :host {
        display: block;
      }
      .toolbar {
        display: flex;
        flex-wrap: wrap;
        gap: 0.75rem;
        align-items: end;
      }
      .field {
        display: flex;
        flex-direction: column;
        gap: 0.2rem;
        min-width: 0;
      }
      .field label {
        font-size: 0.8125rem;
        font-weight: 600;
        color: var(--_muted);
      }
      .toolbar .field {
        flex: 1 1 8.5rem;
        max-width: 15rem;
      }
      .toolbar .grow {
        flex: 3 1 14rem;
        max-width: none;
      }
      .toolbar input,
      .toolbar select {
        width: 100%;
      }
      .statusbar {
        display: flex;
        flex-wrap: wrap;
        gap: 0.4rem 1rem;
        align-items: center;
        margin: 0.9rem 0 0.7rem;
      }
      .summary {
        display: inline-flex;
        flex-wrap: wrap;
        gap: 0.2rem 0.8rem;
        color: var(--_muted);
        font-size: 0.875rem;
      }
      .summary [class^='tone-'] {
        color: var(--_tone);
        font-weight: 600;
      }
      .banner {
        margin: 0 0 0.8rem;
        padding: 0.55rem 0.8rem;
        border-radius: 8px;
        border: 1px solid color-mix(in srgb, var(--_bad) 40%, transparent);
        background: color-mix(in srgb, var(--_bad) 8%, transparent);
        font-size: 0.875rem;
      }
      .banner.demo {
        border-color: color-mix(in srgb, var(--_info) 40%, transparent);
        background: color-mix(in srgb, var(--_info) 8%, transparent);
      }
      .cards {
        list-style: none;
        margin: 0;
        padding: 0;
        display: grid;
        grid-template-columns: repeat(auto-fill, minmax(min(100%, 17rem), 1fr));
        gap: 0.85rem;
      }
      .cards.stale .card {
        opacity: 0.62;
        filter: saturate(0.4);
      }
      .card {
        height: 100%;
        display: flex;
        flex-direction: column;
        gap: 0.45rem;
        padding: 0.8rem 0.95rem 0.85rem;
        background: var(--_surface);
        border: 1px solid var(--_border);
        border-left: 5px solid var(--_tone);
        border-radius: var(--_radius);
        box-shadow: 0 1px 2px rgb(0 0 0 / 0.05);
        min-width: 0;
      }
      .card header {
        display: flex;
        flex-wrap: wrap;
        align-items: start;
        justify-content: space-between;
        gap: 0.3rem 0.5rem;
      }
      h3 {
        margin: 0;
        font-size: 1.0625rem;
        line-height: 1.3;
        min-width: 0;
        overflow-wrap: break-word;
      }
      .where {
        margin: -0.25rem 0 0;
        display: flex;
        flex-wrap: wrap;
        gap: 0.35rem;
        color: var(--_muted);
        font-size: 0.8125rem;
        overflow-wrap: anywhere;
      }
      .badges {
        display: flex;
        flex-wrap: wrap;
        gap: 0.35rem;
      }
      dl {
        display: grid;
        grid-template-columns: 1fr 1fr;
        gap: 0.5rem;
        margin: 0.1rem 0 0;
      }
      dt {
        font-size: 0.75rem;
        color: var(--_muted);
        text-transform: uppercase;
        letter-spacing: 0.04em;
      }
      dd {
        margin: 0;
        font-size: 0.875rem;
        overflow-wrap: anywhere;
      }
      code {
        font-family: var(--_mono);
        font-size: 0.8125rem;
      }
      .message {
        margin: 0;
        padding-top: 0.45rem;
        border-top: 1px dashed var(--_border);
        font-size: 0.8125rem;
        color: var(--_muted);
        overflow-wrap: anywhere;
        display: -webkit-box;
        -webkit-line-clamp: 3;
        -webkit-box-orient: vertical;
        overflow: hidden;
      }
      .empty {
        margin: 0;
        padding: 1.5rem 1rem;
        text-align: center;
        color: var(--_muted);
        border: 1px dashed var(--_border);
        border-radius: var(--_radius);
      }
    `]};var oe=4e3,ot=class extends g{static properties={url:{type:String},topics:{type:String},token:{type:String},max:{type:Number},_draft:{state:!0},_snapshot:{state:!0},_paused:{state:!0},_events:{state:!0},_conn:{state:!0}};#t=0;constructor(){super(),this.url="",this.topics="**",this.token="",this.max=200,this._draft=null,this._snapshot=!1,this._paused=!1,this._events=[],this._conn={state:"idle"}}watch(t,{snapshot:e=this._snapshot}={}){this.topics=t,this._snapshot=e,this._draft=null,this._events=[]}clear(){this._events=[]}#s(t){let s={...t.detail,seq:++this.#t,at:new Date};this._events=[s,...this._events].slice(0,Math.max(1,this.max))}#e(t){let e={seq:++this.#t,at:new Date,type:t.type,control:!0,data:t.detail};this._events=[e,...this._events].slice(0,Math.max(1,this.max))}#i(t){t.preventDefault();let e=new FormData(t.target);this.watch(String(e.get("pattern")??"").trim()||"**",{snapshot:e.get("snapshot")==="on"})}render(){let t=rt(this._conn.state,this._conn),e=this._events.length;return h`
      <herald-stream
        .url=${this.url}
        .topics=${this.topics}
        .token=${this.token}
        .snapshot=${this._snapshot}
        .paused=${this._paused}
        envelope
        @herald-event=${this.#s}
        @herald.reset=${this.#e}
        @herald.synced=${this.#e}
        @herald.shutdown=${this.#e}
        @herald.expired=${this.#e}
        @herald-state=${s=>this._conn=s.detail}
      ></herald-stream>
      <form class="toolbar" @submit=${this.#i}>
        <label class="grow">
          <span>Pattern</span>
          <input
            name="pattern"
            .value=${this._draft??this.topics}
            @input=${s=>this._draft=s.target.value}
            placeholder="e.g. argocd/applications/** or items/*"
            autocomplete="off"
            spellcheck="false"
            required
          />
        </label>
        <label class="check">
          <input type="checkbox" name="snapshot" ?checked=${this._snapshot} />
          <span>Snapshot first</span>
        </label>
        <button class="primary" type="submit">Watch</button>
      </form>
      <div class="statusbar">
        <span class="conn tone-${t.tone}" role="status">
          <span class="dot" aria-hidden="true"></span>${t.text}
        </span>
        <span class="count">${e} event${e===1?"":"s"} on <code>${this.topics}</code></span>
        <span class="actions">
          <button type="button" aria-pressed=${this._paused} @click=${()=>this._paused=!this._paused}>
            ${this._paused?"Resume":"Pause"}
          </button>
          <button type="button" @click=${this.clear} ?disabled=${!e}>Clear</button>
        </span>
      </div>
      ${e?h`<ol class="events" aria-label="Events, newest first" tabindex="0">
            ${st(this._events,s=>s.seq,s=>this.#r(s))}
          </ol>`:h`<p class="empty">
            ${this._paused?"Paused.":"Waiting for events\u2026"} Publish to a topic matching
            <code>${this.topics}</code> and it shows here.
          </p>`}
    `}#r(t){let e=t.at.toLocaleTimeString([],{hour12:!1}),s=typeof t.data=="string"?t.data:JSON.stringify(t.data,null,1);s=(s??"null").replace(/\n\s*/g," ");let r=s.length>oe;return r&&(s=s.slice(0,oe)),h`<li class=${t.control?"control":t.tombstone?"tombstone":""}>
      <div class="meta">
        <time datetime=${t.at.toISOString()}>${e}</time>
        <span class="type">${t.type}</span>
        ${t.topic?h`<span class="topic">${t.topic}</span>`:d}
        ${t.key!=null?h`<span class="key">key <code>${t.key}</code></span>`:d}
        ${t.tombstone?h`<span class="badge tone-bad">tombstone</span>`:d}
        ${t.id?h`<span class="id">id <code>${t.id}</code></span>`:d}
      </div>
      <pre class="payload">${s}${r?h`<span class="cut">… (cut)</span>`:d}</pre>
    </li>`}static styles=[C,$`
      :host {
        display: block;
      }
      .toolbar {
        display: flex;
        flex-wrap: wrap;
        gap: 0.75rem;
        align-items: end;
      }
      .toolbar label {
        display: flex;
        flex-direction: column;
        gap: 0.2rem;
        font-size: 0.8125rem;
        font-weight: 600;
        color: var(--_muted);
        min-width: 0;
      }
      .toolbar .grow {
        flex: 1 1 16rem;
      }
      .toolbar .grow input {
        width: 100%;
        font-family: var(--_mono);
      }
      .toolbar .check {
        flex-direction: row;
        align-items: center;
        gap: 0.4rem;
        min-height: 2.25rem;
        color: var(--_text);
        font-weight: 500;
      }
      .check input {
        min-height: 0;
        width: 1.1rem;
        height: 1.1rem;
      }
      .statusbar {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem 1rem;
        margin: 0.9rem 0 0.7rem;
      }
      .count {
        color: var(--_muted);
        font-size: 0.875rem;
        overflow-wrap: anywhere;
      }
      .actions {
        display: flex;
        gap: 0.5rem;
        margin-left: auto;
      }
      button[aria-pressed='true'] {
        background: color-mix(in srgb, var(--_warn) 18%, var(--_surface));
        border-color: var(--_warn);
      }
      button:disabled {
        opacity: 0.5;
        cursor: default;
      }
      code,
      pre {
        font-family: var(--_mono);
        font-size: 0.8125rem;
      }
      .events {
        list-style: none;
        margin: 0;
        padding: 0;
        border: 1px solid var(--_border);
        border-radius: var(--_radius);
        background: var(--_surface);
        max-height: 32rem;
        overflow-y: auto;
      }
      .events li {
        padding: 0.5rem 0.8rem;
        border-top: 1px solid var(--_border);
        min-width: 0;
      }
      .events li:first-child {
        border-top: 0;
      }
      .events li.control {
        background: color-mix(in srgb, var(--_info) 7%, transparent);
      }
      .events li.tombstone {
        background: color-mix(in srgb, var(--_bad) 6%, transparent);
      }
      .meta {
        display: flex;
        flex-wrap: wrap;
        align-items: baseline;
        gap: 0.2rem 0.75rem;
        font-size: 0.8125rem;
        color: var(--_muted);
      }
      .type {
        font-weight: 700;
        color: var(--_accent);
      }
      .control .type {
        color: var(--_info);
      }
      .topic {
        font-family: var(--_mono);
        color: var(--_text);
        overflow-wrap: anywhere;
      }
      .key,
      .id {
        overflow-wrap: anywhere;
      }
      .payload {
        margin: 0.3rem 0 0;
        white-space: pre-wrap;
        overflow-wrap: anywhere;
      }
      .cut {
        color: var(--_muted);
      }
      .empty {
        margin: 0;
        padding: 1.5rem 1rem;
        text-align: center;
        color: var(--_muted);
        border: 1px dashed var(--_border);
        border-radius: var(--_radius);
        overflow-wrap: anywhere;
      }
    `]};var Ee=40,Ce={ready:"accepting streams and publishes",starting:"opening its event log",draining:"shutting down: streams are told to reconnect"},at=class extends g{static properties={url:{type:String},interval:{type:Number},_ready:{state:!0},_sample:{state:!0},_history:{state:!0},_error:{state:!0}};#t=0;#s=null;constructor(){super(),this.url="",this.interval=5,this._ready=null,this._sample=null,this._history=[],this._error=null}connectedCallback(){super.connectedCallback(),document.addEventListener("visibilitychange",this.#e),this.#i()}disconnectedCallback(){super.disconnectedCallback(),document.removeEventListener("visibilitychange",this.#e),clearTimeout(this.#t)}#e=()=>{clearTimeout(this.#t),this.#s=null,document.visibilityState!=="hidden"&&this.#i()};#i=async()=>{clearTimeout(this.#t);try{let[t,e]=await Promise.all([fetch(V(this.url,"ready"),{cache:"no-store"}).then(async s=>({ok:s.ok,...await s.json().catch(()=>({status:`HTTP ${s.status}`}))})),fetch(V(this.url,"metrics"),{cache:"no-store"}).then(s=>{if(!s.ok)throw new Error(`/metrics answered ${s.status}`);return s.text()})]);this.#r(t,Kt(e),performance.now()),this._error=null}catch(t){this._error=t instanceof TypeError?"The node does not answer.":String(t.message??t),this._ready=null,this.#s=null}this.isConnected&&document.visibilityState!=="hidden"&&(this.#t=setTimeout(this.#i,Math.max(1,this.interval)*1e3))};#r(t,e,s){let r={at:s,published:e.get("herald_events_published_total"),delivered:e.get("herald_events_delivered_total"),latencySum:e.get("herald_publish_duration_seconds_sum"),latencyCount:e.get("herald_publish_duration_seconds_count")},n=this.#s,o=n?(s-n.at)/1e3:0,a={...r,publishRate:n?xt(n.published,r.published,o):null,deliverRate:n?xt(n.delivered,r.delivered,o):null,latencyMs:null};n&&r.latencyCount>n.latencyCount&&(a.latencyMs=(r.latencySum-n.latencySum)/(r.latencyCount-n.latencyCount)*1e3),this.#s=r,this._ready=t,this._sample=a,n&&(this._history=[...this._history,a].slice(-Ee))}render(){let t=this._ready,e=this._sample,s=this._error?"unreachable":t?.status??"checking\u2026",r=this._error?"bad":t?.ok?"ok":t?"warn":"muted",n=!e||e.publishRate==null;return h`
      <dl class="tiles">
        <div class="tile">
          <dt>Status</dt>
          <dd class="conn tone-${r}" data-stat="status">
            <span class="dot" aria-hidden="true"></span>${s}
          </dd>
          <dd class="note">${this._error??Ce[t?.status]??""}</dd>
        </div>
        <div class="tile">
          <dt>Open streams</dt>
          <dd class="big" data-stat="clients">${t?.clients??"\u2014"}</dd>
          <dd class="note">SSE clients on this node, this page's included</dd>
        </div>
        ${this.#n("Published","publishRate",e,n,"events/s appended to the log")}
        ${this.#n("Delivered","deliverRate",e,n,"events/s written to streams")}
        <div class="tile">
          <dt>Publish latency</dt>
          <dd class="big" data-stat="latency">
            ${e?.latencyMs==null?"\u2014":h`${e.latencyMs.toFixed(e.latencyMs<10?1:0)}<small> ms</small>`}
          </dd>
          <dd class="note">mean, request to durable answer</dd>
        </div>
      </dl>
      <p class="footnote">
        Every ${this.interval} s from <code>/ready</code> and <code>/metrics</code>${e?.published!=null?h`; totals: ${e.published.toLocaleString()} published, ${e.delivered.toLocaleString()} delivered`:d}.
      </p>
    `}#n(t,e,s,r,n){let o=this._history.map(a=>a[e]);return h`<div class="tile">
      <dt>${t}</dt>
      <dd class="big" data-stat=${e}>
        ${r?"\u2014":h`${Jt(s[e])}<small> /s</small>`}
      </dd>
      <dd class="note">${r?"measuring\u2026":n}</dd>
      ${o.length>2?this.#o(o):d}
    </div>`}#o(t){let r=Math.max(1,...t.map(p=>p??0)),n=120/(t.length-1),o=t.map((p,f)=>`${(f*n).toFixed(1)},${(26-(p??0)/r*24).toFixed(1)}`),l=`${o[0].split(",")[0]},28 ${o.join(" ")} 120,28`;return h`<svg class="spark" viewBox="0 0 ${120} ${28}" preserveAspectRatio="none" aria-hidden="true">
      ${b`<polygon points=${l} fill="currentColor" opacity="0.12"/>
        <polyline points=${o.join(" ")} fill="none" stroke="currentColor" stroke-width="1.6"
          vector-effect="non-scaling-stroke" stroke-linejoin="round"/>`}
    </svg>`}static styles=[C,$`
      :host {
        display: block;
      }
      .tiles {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(min(100%, 9.5rem), 1fr));
        gap: 0.75rem;
        margin: 0;
      }
      .tile {
        position: relative;
        padding: 0.7rem 0.9rem;
        background: var(--_surface);
        border: 1px solid var(--_border);
        border-radius: var(--_radius);
        min-width: 0;
        overflow: hidden;
      }
      dt {
        font-size: 0.75rem;
        font-weight: 600;
        color: var(--_muted);
        text-transform: uppercase;
        letter-spacing: 0.04em;
      }
      dd {
        margin: 0;
      }
      .big {
        font-size: 1.6rem;
        font-weight: 700;
        line-height: 1.25;
        font-variant-numeric: tabular-nums;
      }
      .big small {
        font-size: 0.8125rem;
        font-weight: 600;
        color: var(--_muted);
      }
      dd.conn {
        font-size: 1.15rem;
        margin: 0.3rem 0 0.15rem;
        text-transform: capitalize;
      }
      .note {
        font-size: 0.75rem;
        color: var(--_muted);
      }
      .spark {
        display: block;
        width: 100%;
        height: 1.75rem;
        margin-top: 0.35rem;
        color: var(--_accent);
      }
      .footnote {
        margin: 0.6rem 0 0;
        font-size: 0.8125rem;
        color: var(--_muted);
      }
      code {
        font-family: var(--_mono);
      }
    `]};var lt="herald.token",ct=class extends g{static properties={for:{type:String},_has:{state:!0}};constructor(){super(),this.for="deployment-status-board, herald-inspector, herald-stream",this._has=!1}connectedCallback(){super.connectedCallback();let t=sessionStorage.getItem(lt)??"";t&&this.#t(t)}#t(t){this._has=!!t;for(let e of document.querySelectorAll(this.for))e.token=t}#s(t){t.preventDefault();let e=t.target.elements.token,s=e.value.trim();s?sessionStorage.setItem(lt,s):sessionStorage.removeItem(lt),e.value="",this.#t(s)}#e(){sessionStorage.removeItem(lt),this.#t("")}render(){return h`<details>
      <summary>${this._has?"Access token set":"Access token"}</summary>
      <form @submit=${this.#s}>
        <label>
          <span>JWT for the hub (kept for this tab only)</span>
          <input name="token" type="password" autocomplete="off" spellcheck="false" />
        </label>
        <div class="row">
          <button class="primary" type="submit">Use</button>
          <button type="button" @click=${this.#e} ?disabled=${!this._has}>Forget</button>
        </div>
      </form>
    </details>`}static styles=[C,$`
      :host {
        display: inline-block;
        position: relative;
        color: inherit;
      }
      summary {
        cursor: pointer;
        font-size: 0.875rem;
        font-weight: 600;
        padding: 0.3rem 0.2rem;
      }
      form {
        position: absolute;
        right: 0;
        z-index: 2;
        width: min(22rem, calc(100vw - 2rem));
        margin-top: 0.4rem;
        padding: 0.8rem;
        display: grid;
        gap: 0.6rem;
        background: var(--_surface);
        color: var(--_text);
        border: 1px solid var(--_border);
        border-radius: var(--_radius);
        box-shadow: 0 8px 24px rgb(0 0 0 / 0.18);
      }
      label {
        display: grid;
        gap: 0.25rem;
        font-size: 0.8125rem;
        font-weight: 600;
        color: var(--_muted);
      }
      /* On a phone the header wraps and the field may sit anywhere: open in the flow instead. */
      @media (max-width: 40rem) {
        form {
          position: static;
          width: min(22rem, calc(100vw - 2rem));
        }
      }
      .row {
        display: flex;
        gap: 0.5rem;
      }
      button:disabled {
        opacity: 0.5;
      }
    `]};var Me={"herald-stream":Q,"deployment-status-board":nt,"herald-inspector":ot,"herald-node-stats":at,"herald-token-field":ct};for(let[i,t]of Object.entries(Me))customElements.get(i)||customElements.define(i,t);export{nt as DeploymentStatusBoard,ot as HeraldInspector,at as HeraldNodeStats,Q as HeraldStream,ct as HeraldTokenField,B as SseParser};
/*! Bundled license information:

@lit/reactive-element/css-tag.js:
  (**
   * @license
   * Copyright 2019 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)

@lit/reactive-element/reactive-element.js:
lit-html/lit-html.js:
lit-element/lit-element.js:
lit-html/directive.js:
lit-html/directives/repeat.js:
  (**
   * @license
   * Copyright 2017 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)

lit-html/is-server.js:
  (**
   * @license
   * Copyright 2022 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)

lit-html/directive-helpers.js:
  (**
   * @license
   * Copyright 2020 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)
*/
